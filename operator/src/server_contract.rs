//! What the `collab-server` binary expects from the platform that runs it: environment
//! variable names, ports, probe paths, the health-check command, the data directory and the
//! shutdown timing. It depends on nothing else of the crate (the CRD's rules and defaults are
//! built from it); [`crate::server_env`] turns a validated CollabServer into the server's
//! environment with these names.

/// The server's default `PORT`: WebSocket, `/health`, `/ready` and `/metrics`.
pub const DEFAULT_PORT: u16 = 1234;
/// The second listener the operator turns on (`COLLAB_SERVER_METRICS_PORT`) for Prometheus,
/// kept off the client-facing Service.
pub const METRICS_PORT: u16 = 9090;
/// Liveness: 200 while the process runs.
pub const HEALTH_PATH: &str = "/health";
/// Readiness: 200 when storage answers, 503 while draining or when the database is unreachable.
pub const READY_PATH: &str = "/ready";
/// How often the start-up check asks `/health`, in seconds (the Kubernetes startup probe).
pub const STARTUP_PROBE_PERIOD_SECONDS: i32 = 2;
/// Failed start-up checks before the container is restarted.
pub const STARTUP_PROBE_FAILURES: i32 = 60;
/// The time the server may take to start (migrations run before the listener opens): two
/// minutes, on Kubernetes (startup probe) and ECS (container health check start period and
/// the service's health-check grace period) alike.
pub const STARTUP_SECONDS: i32 = STARTUP_PROBE_PERIOD_SECONDS * STARTUP_PROBE_FAILURES;
/// Name of the server container (Kubernetes pod and ECS task definition alike).
pub const CONTAINER_NAME: &str = "collab-server";
/// Name of the client port (WebSocket, `/health`, `/ready`) in pods, Services and tasks.
pub const HTTP_PORT_NAME: &str = "http";
/// Name of the metrics port in pods, Services and tasks.
pub const METRICS_PORT_NAME: &str = "metrics";
/// Prometheus text exposition.
pub const METRICS_PATH: &str = "/metrics";
/// Where the image keeps the binary (`deploy/docker/server.Dockerfile`; its entrypoint).
pub const SERVER_BINARY: &str = "/usr/local/bin/collab-server";
/// Exits 0 when `GET /health` answers 200 (the image has no shell and no curl): container
/// health checks, in exec form (ECS `["CMD", ...]`, not `CMD-SHELL`).
pub const HEALTHCHECK_COMMAND: [&str; 2] = [SERVER_BINARY, "healthcheck"];
/// Where the embedded SQLite database (`collab.db`) lives in the container.
pub const DATA_DIR: &str = "/var/lib/collab";
/// The image's non-root user and group (distroless `nonroot`), owner of [`DATA_DIR`].
pub const SERVER_USER_ID: i64 = 65532;

/// The server's own `COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS` default: on SIGTERM it stores every
/// document and closes every socket within this many seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: i64 = 25;
/// Pause before SIGTERM (Kubernetes preStop) so endpoints stop routing new sockets to the pod.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// Time left after the server's shutdown deadline for the process to exit before SIGKILL.
pub const SHUTDOWN_MARGIN_SECONDS: i64 = 5;
/// Smallest shutdown timeout the operator gives the server.
pub const MIN_SHUTDOWN_TIMEOUT_SECONDS: i64 = 5;
/// Default `terminationGracePeriodSeconds`: preStop pause + the server's default timeout + margin.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 =
    PRE_STOP_SLEEP_SECONDS + DEFAULT_SHUTDOWN_TIMEOUT_SECONDS + SHUTDOWN_MARGIN_SECONDS;
/// Smallest accepted `terminationGracePeriodSeconds`.
pub const MIN_TERMINATION_GRACE_PERIOD_SECONDS: i64 =
    PRE_STOP_SLEEP_SECONDS + MIN_SHUTDOWN_TIMEOUT_SECONDS + SHUTDOWN_MARGIN_SECONDS;

/// The server's `COLLAB_SERVER_KEEPALIVE_SECS` default: an idle socket gets a frame at least
/// this often, so a load balancer's idle timeout must be longer.
pub const DEFAULT_KEEPALIVE_SECONDS: i64 = 10;

/// The server's shutdown timeout that fits a pod's grace period (preStop pause and exit
/// margin subtracted). The timeout is a deadline: the server exits as soon as it is done.
pub fn shutdown_timeout_for_grace_period(grace_period_seconds: i64) -> i64 {
    grace_period_seconds - PRE_STOP_SLEEP_SECONDS - SHUTDOWN_MARGIN_SECONDS
}

/// The time from SIGTERM to SIGKILL (ECS `stopTimeout`) on a platform that drains the load
/// balancer before it sends SIGTERM, so needs no preStop pause: the grace period without it.
pub fn stop_timeout_for_grace_period(grace_period_seconds: i64) -> i64 {
    grace_period_seconds - PRE_STOP_SLEEP_SECONDS
}

/// The server's shutdown timeout for a stop timeout (SIGTERM to SIGKILL): the exit margin
/// subtracted. For every grace period it equals [`shutdown_timeout_for_grace_period`], so a
/// CollabServer's server stops the same way on Kubernetes and on ECS.
pub fn shutdown_timeout_for_stop_timeout(stop_timeout_seconds: i64) -> i64 {
    stop_timeout_seconds - SHUTDOWN_MARGIN_SECONDS
}

/// Environment variable names of collab-server.
pub mod env {
    pub const HOST: &str = "HOST";
    pub const PORT: &str = "PORT";
    pub const METRICS_PORT: &str = "COLLAB_SERVER_METRICS_PORT";
    pub const DATA_DIR: &str = "COLLAB_SERVER_DATA_DIR";
    pub const SHUTDOWN_TIMEOUT_SECS: &str = "COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS";
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const DATABASE_HOST: &str = "DATABASE_HOST";
    pub const DATABASE_PORT: &str = "DATABASE_PORT";
    pub const DATABASE_NAME: &str = "DATABASE_NAME";
    pub const DATABASE_USER: &str = "DATABASE_USER";
    pub const DATABASE_PASSWORD: &str = "DATABASE_PASSWORD";
    pub const DATABASE_SSLMODE: &str = "DATABASE_SSLMODE";
    pub const REDIS_URL: &str = "REDIS_URL";
    pub const JWT_SECRET: &str = "JWT_SECRET";
    pub const JWKS_URL: &str = "JWKS_URL";
    pub const COGNITO_USER_POOL_ID: &str = "COGNITO_USER_POOL_ID";
    pub const COGNITO_REGION: &str = "COGNITO_REGION";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const JWT_ISSUER: &str = "JWT_ISSUER";
    pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
    pub const API_SECRET: &str = "COLLAB_SERVER_API_SECRET";
    pub const API_ADMIN_ONLY: &str = "COLLAB_SERVER_API_ADMIN_ONLY";
    pub const WEBHOOK_URL: &str = "COLLAB_SERVER_WEBHOOK_URL";
    pub const WEBHOOK_SECRET: &str = "COLLAB_SERVER_WEBHOOK_SECRET";
    pub const WEBHOOK_EVENTS: &str = "COLLAB_SERVER_WEBHOOK_EVENTS";
    pub const DEMO: &str = "COLLAB_SERVER_DEMO";
    pub const MAX_DOCUMENT_BYTES: &str = "COLLAB_SERVER_MAX_DOCUMENT_BYTES";
    pub const MAX_MESSAGE_BYTES: &str = "COLLAB_SERVER_MAX_MESSAGE_BYTES";
    pub const MAX_CONNECTIONS: &str = "COLLAB_SERVER_MAX_CONNECTIONS";
    pub const MAX_CONNECTIONS_PER_IP: &str = "COLLAB_SERVER_MAX_CONNECTIONS_PER_IP";
    pub const RATE_MESSAGES_PER_SEC: &str = "COLLAB_SERVER_RATE_MESSAGES_PER_SEC";
    pub const RATE_MESSAGES_BURST: &str = "COLLAB_SERVER_RATE_MESSAGES_BURST";
    pub const RATE_BYTES_PER_SEC: &str = "COLLAB_SERVER_RATE_BYTES_PER_SEC";
    pub const RATE_BYTES_BURST: &str = "COLLAB_SERVER_RATE_BYTES_BURST";
    pub const TRUSTED_PROXIES: &str = "COLLAB_SERVER_TRUSTED_PROXIES";
    /// Not set by the operator (a CollabServer's `env` may); read to describe load balancer
    /// timeouts.
    pub const KEEPALIVE_SECS: &str = "COLLAB_SERVER_KEEPALIVE_SECS";

    /// Variables the operator derives from the spec: a CollabServer's `env` may not set them
    /// (it could otherwise undo a decision, e.g. point a single-replica SQLite server at a
    /// database behind the operator's back).
    pub const MANAGED: &[&str] = &[
        HOST,
        PORT,
        METRICS_PORT,
        DATA_DIR,
        SHUTDOWN_TIMEOUT_SECS,
        LOG_LEVEL,
        LOG_FORMAT,
        DATABASE_URL,
        DATABASE_HOST,
        DATABASE_PORT,
        DATABASE_NAME,
        DATABASE_USER,
        DATABASE_PASSWORD,
        DATABASE_SSLMODE,
        REDIS_URL,
        JWT_SECRET,
        JWKS_URL,
        COGNITO_USER_POOL_ID,
        COGNITO_REGION,
        AWS_REGION,
        JWT_ISSUER,
        JWT_AUDIENCE,
    ];
}
