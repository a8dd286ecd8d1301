//! `collab.zedi.dev/v1alpha1` `CollabServer`: the spec a person writes and the status the
//! operator reports. Every field carries a doc comment, which becomes its description in the
//! generated CRD schema (`collab-operator crd`) and in `docs/operator.md`.
//!
//! Defaults that matter to behaviour are resolved in [`crate::validate`], not here:
//! the same spec is also read outside a cluster (ECS rendering), where no API server applies
//! schema defaults.

// kube's repeated `printcolumn(type_ = ..)` attributes trip this lint.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
            TopologySpreadConstraint,
        },
        networking::v1::NetworkPolicyPeer,
    },
    apimachinery::pkg::{
        api::resource::Quantity, apis::meta::v1::Condition, util::intstr::IntOrString,
    },
};
use kube::{
    CustomResource, KubeSchema,
    core::{Message, Rule},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{labels, names, server_contract};

/// Replicas when `spec.replicas` is omitted and the spec has `database` and `redis` (1
/// otherwise).
pub const DEFAULT_REPLICAS: i32 = 2;
/// `spec.autoscaling.minReplicas` when omitted.
pub const DEFAULT_MIN_REPLICAS: i32 = 2;
/// `spec.autoscaling.maxReplicas` when omitted.
pub const DEFAULT_MAX_REPLICAS: i32 = 10;
/// Values of `spec.database.sslMode` (libpq's `sslmode`).
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
/// Most entries of `spec.env`: bounds the cost Kubernetes estimates for the rule that checks
/// their names (an unbounded list would exceed the CEL cost budget).
pub const MAX_ENV: u32 = 256;
/// Longest name of a `spec.env` variable: bounds the same cost estimate.
pub const MAX_ENV_NAME_LENGTH: u32 = 256;
/// Most keys of `spec.podTemplate.labels` and `.annotations`: bounds the cost Kubernetes
/// estimates for the rules on their keys (a map without it counts as some 390,000 entries).
pub const MAX_POD_METADATA_ENTRIES: u32 = 64;
/// Longest URL the CRD accepts (`spec.auth.jwksUrl`).
pub const MAX_URL_LENGTH: u32 = 2048;
/// Longest host name (`spec.ingress.host`, RFC 1123).
pub const MAX_HOST_LENGTH: u32 = 253;
/// Longest short identifier the CRD checks with a rule (Cognito pool id and region).
pub const MAX_IDENTIFIER_LENGTH: u32 = 128;

/// Desired state of a CollabServer: a Deployment of collab-server with its ConfigMap, Services,
/// PodDisruptionBudget and, optionally, a HorizontalPodAutoscaler, a ServiceMonitor and a
/// managed Redis.
//
// Cross-field rules are CEL `x-kubernetes-validations` (`#[kube(validation)]`,
// `#[x_kube(validation)]`), so the API server rejects an invalid spec when it is applied;
// `crate::validate` checks the same rules (and those that need the cluster's Secrets) for the
// controller and for ECS rendering, which runs without an API server.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "collab.zedi.dev",
    version = "v1alpha1",
    kind = "CollabServer",
    namespaced,
    shortname = "collab",
    status = "CollabServerStatus",
    derive = "PartialEq",
    doc = "A collab-server deployment (Hocuspocus- and y-websocket-compatible Yjs sync server) managed by collab-operator.",
    validation = name_length_rule(),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "pods the Deployment runs"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "pods passing /ready"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].reason",
        description = "reason of the Available condition"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        description = "in-cluster WebSocket URL",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = no_authentication_rule())]
#[serde(rename_all = "camelCase")]
pub struct CollabServerSpec {
    /// Number of collab-server pods. Default: 2 when `database` and `redis` are set, otherwise
    /// 1 (the embedded SQLite database serves one pod). Ignored while `autoscaling.enabled` is
    /// true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// Server image. Default: the collab-server image of the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Image pull policy of the server container (Kubernetes' default when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets holding registry credentials for the server and Redis images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Compute resources of the server container. Default: requests of 100m CPU and 128Mi
    /// memory, no limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Port for WebSocket clients, `/health` and `/ready` (default 1234, the server's `PORT`).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[x_kube(validation = port_rule())]
    pub port: i32,

    /// Log filter of the server (`LOG_LEVEL`, RUST_LOG syntax), e.g. `info` or
    /// `collab_server=debug`. Default: the server's own (`info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Log format of the server (`LOG_FORMAT`): `json` (default) or `plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// How clients' tokens are checked. Exactly one of `jwtSecretRef`, `jwksUrl` and `cognito`,
    /// or none with `allowAnonymous: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// PostgreSQL for documents. Omitted: the server stores documents in its embedded SQLite
    /// database on a PersistentVolumeClaim (see `sqlite`), and runs as a single replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// The volume for the embedded SQLite database; used only when `database` is omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSpec>,

    /// Redis that relays updates and awareness between replicas: `external` or `managed`.
    /// Required for more than one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,

    /// Horizontal pod autoscaling on CPU and, optionally, connections per pod (an
    /// `autoscaling/v2` HorizontalPodAutoscaler); while enabled, the operator no longer sets the
    /// Deployment's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// PodDisruptionBudget for the server pods. Omitted: enabled with `maxUnavailable: 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,

    /// Prometheus Operator integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// The client-facing Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// A NetworkPolicy for the server pods. (The managed Redis always gets its own
    /// NetworkPolicy.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// An Ingress (`networking.k8s.io/v1`) in front of the client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Additions to the server pods: metadata and scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// The document API at `/api/documents` (read, write, list and delete documents over
    /// HTTP). Omitted: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSpec>,

    /// Webhooks (`@hocuspocus/extension-webhook`-compatible events). Omitted: none are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,

    /// Serve the collaborative demo editor at `/` (`COLLAB_SERVER_DEMO`). Omitted: the
    /// server's default (on only without authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo: Option<bool>,

    /// What one client, one socket and one document may cost the server. Omitted fields keep
    /// the server's defaults (see the server's README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,

    /// Extra environment variables for the server container (for example
    /// `COLLAB_SERVER_IDLE_TIMEOUT_SECS`). Variables the operator sets itself are rejected,
    /// and so is a variable that a spec field (`api`, `webhook`, `demo`, `limits`) also sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ENV), transform = bound_env_names)]
    #[x_kube(validation = reserved_env_rule())]
    pub env: Vec<EnvVar>,

    /// Seconds a pod gets to stop: a preStop pause of 5 s while endpoints drop the pod, then
    /// the server stores every document and closes sockets within the remainder less 5 s.
    /// Default 35 (the server's 25 s shutdown timeout); at least 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = grace_period_rule())]
    pub termination_grace_period_seconds: Option<i64>,

    /// While true, the operator changes nothing (children are left as they are) and reports
    /// `Progressing=False` with reason `Paused`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

fn default_port() -> i32 {
    i32::from(crate::server_contract::DEFAULT_PORT)
}

fn default_true() -> bool {
    true
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Plain,
}

/// A key of a Secret in the CollabServer's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// Token checking.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new(
        "(has(self.jwtSecretRef) ? 1 : 0) + (has(self.jwksUrl) ? 1 : 0) + (has(self.cognito) ? 1 : 0) <= 1"
    ).message("set only one of jwtSecretRef, jwksUrl and cognito"),
    validation = Rule::new(
        "!(has(self.allowAnonymous) && self.allowAnonymous) || !(has(self.jwtSecretRef) || has(self.jwksUrl) || has(self.cognito))"
    ).message("allowAnonymous is true but jwtSecretRef, jwksUrl or cognito is set, so tokens would still be required: remove one of them"),
    validation = Rule::new(
        "has(self.jwtSecretRef) || has(self.jwksUrl) || has(self.cognito) || !(has(self.issuer) || has(self.audience))"
    ).message("issuer and audience need jwtSecretRef, jwksUrl or cognito (an anonymous server checks no tokens)"),
)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// HS256: a Secret key holding the shared secret (`JWT_SECRET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<SecretKeyRef>,

    /// RS256/ES256: an `https://` URL of the JSON Web Key Set (`JWKS_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_URL_LENGTH))]
    #[x_kube(validation = Rule::new(
        "(self.startsWith('https://') || self.startsWith('http://')) && !self.contains(' ')"
    ).message("must be an https:// or http:// URL"))]
    pub jwks_url: Option<String>,

    /// Amazon Cognito user pool: gives the JWKS URL and the issuer, and checks `token_use`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cognito: Option<CognitoSpec>,

    /// Required `iss` claim (`JWT_ISSUER`). With `cognito`, the pool's issuer by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,

    /// Required audience (`JWT_AUDIENCE`): `aud`, or Cognito access tokens' `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,

    /// Accept clients without tokens: every client may read and write every document. Must be
    /// true when no token check is configured, so a server is never deployed open by accident.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_anonymous: bool,
}

/// The document API.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// A Secret key holding the API's bearer secret, or several separated by commas (for a
    /// rotation without downtime) (`COLLAB_SERVER_API_SECRET`).
    pub secret_ref: SecretKeyRef,
    /// Serve the API only on the metrics port, which is on the `<name>-metrics` Service and
    /// never on the client Service or the Ingress (`COLLAB_SERVER_API_ADMIN_ONLY`; default
    /// false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_only: bool,
}

/// Webhook settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Where events are POSTed: an `https://` or `http://` URL (`COLLAB_SERVER_WEBHOOK_URL`).
    #[schemars(length(max = MAX_URL_LENGTH))]
    #[x_kube(validation = Rule::new(
        "(self.startsWith('https://') || self.startsWith('http://')) && !self.contains(' ')"
    ).message("must be an https:// or http:// URL"))]
    pub url: String,
    /// A Secret key holding the secret that signs each request (`X-Hocuspocus-Signature-256`,
    /// `COLLAB_SERVER_WEBHOOK_SECRET`). Omitted: requests are not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Events to send (`COLLAB_SERVER_WEBHOOK_EVENTS`). Omitted: `change` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub events: Vec<WebhookEvent>,
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// A document changed (debounced).
    Change,
    /// A client connected.
    Connect,
    /// A client disconnected.
    Disconnect,
    /// A document was loaded for the first time.
    Create,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Change => "change",
            WebhookEvent::Connect => "connect",
            WebhookEvent::Disconnect => "disconnect",
            WebhookEvent::Create => "create",
        }
    }
}

/// Limits of the server; each omitted one keeps the server's default.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Largest document in bytes: an update that would make a document larger is refused for
    /// that document; 0 = no limit (`COLLAB_SERVER_MAX_DOCUMENT_BYTES`, default 256 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_document_bytes: Option<i64>,
    /// Largest WebSocket message in bytes; a larger one closes that socket
    /// (`COLLAB_SERVER_MAX_MESSAGE_BYTES`, default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_message_bytes: Option<i64>,
    /// Sockets per pod; more upgrades get 503 (`COLLAB_SERVER_MAX_CONNECTIONS`, default
    /// 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<i64>,
    /// Concurrent sockets per client address; 0 = off (`COLLAB_SERVER_MAX_CONNECTIONS_PER_IP`,
    /// default off). Behind a proxy, set `trustedProxies` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_connections_per_ip: Option<i64>,
    /// Inbound messages per second per socket; 0 = no limit
    /// (`COLLAB_SERVER_RATE_MESSAGES_PER_SEC`, default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub messages_per_second: Option<i64>,
    /// Burst of inbound messages per socket (`COLLAB_SERVER_RATE_MESSAGES_BURST`, default
    /// 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub messages_burst: Option<i64>,
    /// Inbound bytes per second per socket; 0 = no limit (`COLLAB_SERVER_RATE_BYTES_PER_SEC`,
    /// default 4 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub bytes_per_second: Option<i64>,
    /// Burst of inbound bytes per socket (`COLLAB_SERVER_RATE_BYTES_BURST`, default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub bytes_burst: Option<i64>,
    /// Addresses or CIDRs of proxies whose `X-Forwarded-For` is believed, e.g. the load
    /// balancer's subnets (`COLLAB_SERVER_TRUSTED_PROXIES`). Empty: the header is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub trusted_proxies: Vec<String>,
}

/// An Amazon Cognito user pool.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CognitoSpec {
    /// User pool id, e.g. `ap-northeast-1_AbCdEf123` (`COGNITO_USER_POOL_ID`).
    #[schemars(length(max = MAX_IDENTIFIER_LENGTH))]
    #[x_kube(validation = not_blank_rule())]
    pub user_pool_id: String,
    /// AWS region of the pool, e.g. `ap-northeast-1` (`COGNITO_REGION`).
    #[schemars(length(max = MAX_IDENTIFIER_LENGTH))]
    #[x_kube(validation = not_blank_rule())]
    pub region: String,
}

/// PostgreSQL connection, read from a Secret.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The Secret with the connection settings.
    pub secret_ref: DatabaseSecretRef,

    /// libpq sslmode when the Secret gives host/port/dbname/username/password
    /// (`DATABASE_SSLMODE`): disable, allow, prefer, require, verify-ca or verify-full.
    /// Default: the server's (`prefer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = SSL_MODES))]
    pub ssl_mode: Option<String>,

    /// Database name (`DATABASE_NAME`) when the Secret gives host/port/username/password but
    /// no `dbname` (an RDS-managed master user secret, for example). Not with a Secret that
    /// has `dbname`. The server guesses none: the seed's Node server defaulted to `zedi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database_name: Option<String>,
}

/// A Secret with PostgreSQL connection settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct DatabaseSecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Key holding a `postgres://` or `postgresql://` URL. Omitted: the first of
    /// `DATABASE_URL` and `uri` (a CloudNativePG application Secret) that exists, else the
    /// keys `host`, `dbname`, `port`, `username` and `password` (`host` is required, and
    /// `dbname` unless `databaseName` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The embedded SQLite database's volume.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqliteSpec {
    /// Size of the PersistentVolumeClaim (default `1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// StorageClass of the claim (the cluster's default when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Redis for the relay between replicas: set exactly one of `external` and `managed`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[x_kube(validation = Rule::new(
    "!(has(self.external) && has(self.managed) && (!has(self.managed.enabled) || self.managed.enabled))"
).message("set only one of external and managed (managed.enabled defaults to true)"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// A Redis the operator does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedisSpec>,
    /// A Redis Deployment and Service run by the operator, with a generated password kept in
    /// the Secret `<name>-redis` (keys `password` and `url`). Nothing is persisted: Redis only
    /// relays messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedisSpec>,
}

/// An external Redis.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedisSpec {
    /// A Secret key holding the `redis://` or `rediss://` (TLS) URL (`REDIS_URL`), password
    /// included.
    pub secret_ref: SecretKeyRef,
}

/// A Redis run by the operator.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedisSpec {
    /// Run it (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Redis image (default: the operator's `--redis-image`, `redis:7.4-alpine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the Redis container (default: requests of 50m CPU, 64Mi memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedRedisSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            resources: None,
        }
    }
}

/// Horizontal autoscaling.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[x_kube(validation = replica_range_rule())]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Create the HorizontalPodAutoscaler (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Fewest replicas (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Most replicas (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
    /// Average CPU utilization to aim for, in percent of the CPU request (default 70).
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Seconds the autoscaler waits at lower load before removing a pod (default 600), and
    /// then it removes at most one pod per 2 minutes: every scale-down closes WebSockets and
    /// makes their clients reconnect.
    #[serde(
        default,
        rename = "scaleDownStabilizationWindowSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_window_seconds: Option<i32>,
    /// Also scale on the average `collab_server_connections` per pod, aiming at this many (an
    /// HPA `Pods` metric). Needs a custom-metrics adapter, such as prometheus-adapter, serving
    /// the metric through `custom.metrics.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub connections_per_pod: Option<i32>,
}

/// PodDisruptionBudget settings.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Create the PodDisruptionBudget (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pods that voluntary disruptions (drains) may take down at once: a number or a
    /// percentage such as `25%` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(
        "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')"
    ).message("must be a non-negative number or a percentage from 0% to 100%, like 25%"))]
    pub max_unavailable: Option<IntOrString>,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: None,
        }
    }
}

/// Monitoring integrations.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A Prometheus Operator ServiceMonitor for the server's metrics port. Created only when
    /// the ServiceMonitor CRD (`monitoring.coreos.com/v1`) exists; otherwise a condition says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
}

/// ServiceMonitor settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Labels of the ServiceMonitor, e.g. `release: kube-prometheus-stack`, which
    /// kube-prometheus-stack's Prometheus selects on by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The client-facing Service.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type (default `ClusterIP`). The metrics port is never on this Service: it is on
    /// `<name>-metrics`, which is always `ClusterIP`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Annotations of the Service (load balancer settings, for example).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ServiceType {
    /// Reachable inside the cluster.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through the cloud's load balancer.
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Additions to the server pod template.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod annotations. Keys under `collab.zedi.dev/` and the operator's
    /// `app.kubernetes.io/*` selector labels are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = MAX_POD_METADATA_ENTRIES))]
    #[x_kube(validation = reserved_prefix_rule(), validation = reserved_keys_rule())]
    pub annotations: BTreeMap<String, String>,
    /// Extra pod labels. The operator's `app.kubernetes.io/*` selector labels and keys under
    /// `collab.zedi.dev/` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = MAX_POD_METADATA_ENTRIES))]
    #[x_kube(validation = reserved_prefix_rule(), validation = reserved_keys_rule())]
    pub labels: BTreeMap<String, String>,
    /// Node selector of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints. Omitted: pods spread over nodes where possible
    /// (`kubernetes.io/hostname`, `ScheduleAnyway`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CollabServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of the server Deployment.
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probe (`/ready`).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the server pods (for the scale subresource and autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// In-cluster WebSocket URL clients connect to, e.g. `ws://collab.default.svc:1234`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Hash of the objects last applied; changes whenever the operator changes a child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hash: Option<String>,
    /// `Available`, `Progressing`, `Degraded` and `Reconciled`, with reasons a person can act
    /// on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A NetworkPolicy for the server pods.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Who may reach the client port. Empty: any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
    /// Who may reach the metrics port. Empty: any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_from: Vec<NetworkPolicyPeer>,
}

/// An Ingress for the client Service.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[x_kube(validation = Rule::new(
    "!(has(self.enabled) && self.enabled) || (has(self.host) && size(self.host) > 0)"
).message("host is required when the Ingress is enabled"))]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Create the Ingress (default false).
    #[serde(default)]
    pub enabled: bool,
    /// IngressClass of the Ingress (the cluster's default class when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Host name clients connect to, e.g. `collab.example.com`. Required when enabled.
    #[serde(default)]
    #[schemars(length(max = MAX_HOST_LENGTH))]
    pub host: String,
    /// Path prefix routed to the server (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_URL_LENGTH))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("must start with /"))]
    pub path: Option<String>,
    /// A `kubernetes.io/tls` Secret: TLS for the host, so clients use `wss://`. Omitted: plain
    /// `ws://` (unless the ingress controller terminates TLS itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress (ingress-controller settings such as timeouts, for example).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

// CEL rules (`x-kubernetes-validations`) built from the Rust constants they mirror, so the two
// cannot drift. They use only what both Kubernetes' CEL and the `cel` crate the tests evaluate
// them with provide: `has`, `size`, `startsWith`, `contains`, `matches` (RE2 and Rust's regex
// agree on the patterns used), `type`, `in`, the `all`/`exists`/`filter` macros and `string()`.
// Kubernetes' extension libraries (`strings`, `lists`, such as `trim` or `join`) are avoided.

/// Root rule: every object the operator derives from the name (the longest is
/// `<name>-metrics`) must have a name of at most 63 characters.
fn name_length_rule() -> Rule {
    let max = names::MAX_INSTANCE_NAME_LENGTH;
    Rule::new(format!(
        "!has(self.metadata.name) || size(self.metadata.name) <= {max}"
    ))
    .message(Message::Message(format!(
        "metadata.name must be at most {max} characters: the operator names objects <name>-metrics, <name>-data and <name>-redis, which must fit 63"
    )))
}

/// Spec rule: a token check, or `allowAnonymous: true`, must be configured (also when `auth` is
/// omitted, which is why the rule is on the spec and not on `auth`).
fn no_authentication_rule() -> Rule {
    Rule::new(
        "has(self.auth) && (has(self.auth.jwtSecretRef) || has(self.auth.jwksUrl) || has(self.auth.cognito) || (has(self.auth.allowAnonymous) && self.auth.allowAnonymous))",
    )
    .message(
        "auth: no token check is configured: set auth.jwtSecretRef, auth.jwksUrl or auth.cognito, or set auth.allowAnonymous: true to let anyone read and write every document",
    )
}

fn port_rule() -> Rule {
    let metrics = server_contract::METRICS_PORT;
    Rule::new(format!("self != {metrics}")).message(Message::Message(format!(
        "must not be {metrics}, the metrics port"
    )))
}

fn grace_period_rule() -> Rule {
    let minimum = server_contract::MIN_TERMINATION_GRACE_PERIOD_SECONDS;
    Rule::new(format!("self >= {minimum}")).message(Message::Message(format!(
        "must be at least {minimum}: the server needs time to store every document"
    )))
}

/// A CEL list literal of strings (none of which contains a quote).
fn cel_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn reserved_env_rule() -> Rule {
    let managed = cel_list(server_contract::env::MANAGED);
    let names = server_contract::env::MANAGED.join(", ");
    Rule::new(format!("self.all(e, !(e.name in {managed}))")).message(Message::Message(format!(
        "sets a variable the operator sets from the spec; use the matching spec field instead. The operator sets {names}"
    )))
}

// The API server bounds the estimated cost of each rule: on a map without `maxProperties` it
// assumes some 390,000 entries, so the per-key work stays minimal (one `startsWith` with a
// constant) and the exact keys are map lookups, not a list search per key.
fn reserved_prefix_rule() -> Rule {
    let prefix = labels::RESERVED_PREFIX;
    Rule::new(format!("!self.exists(k, k.startsWith('{prefix}'))")).message(Message::Message(
        format!("keys under {prefix} are reserved for the operator"),
    ))
}

fn reserved_keys_rule() -> Rule {
    let keys = labels::RESERVED_KEYS;
    let absent: Vec<String> = keys
        .iter()
        .map(|key| format!("!('{key}' in self)"))
        .collect();
    Rule::new(absent.join(" && ")).message(Message::Message(format!(
        "{} are reserved for the operator",
        keys.join(", ")
    )))
}

/// `spec.env[].name` gets a `maxLength` (k8s-openapi's `EnvVar` schema has none).
fn bound_env_names(schema: &mut schemars::Schema) {
    if let Some(name) = schema
        .get_mut("items")
        .and_then(|items| items.get_mut("properties"))
        .and_then(|properties| properties.get_mut("name"))
        .and_then(serde_json::Value::as_object_mut)
    {
        name.insert("maxLength".to_owned(), MAX_ENV_NAME_LENGTH.into());
    }
}

fn not_blank_rule() -> Rule {
    Rule::new("!self.matches('^[[:space:]]*$')").message("must not be empty")
}

fn replica_range_rule() -> Rule {
    let min = format!("(has(self.minReplicas) ? self.minReplicas : {DEFAULT_MIN_REPLICAS})");
    let max = format!("(has(self.maxReplicas) ? self.maxReplicas : {DEFAULT_MAX_REPLICAS})");
    Rule::new(format!(
        "!(has(self.enabled) && self.enabled) || {min} <= {max}"
    ))
    .message(Message::Message(format!(
        "maxReplicas must not be below minReplicas; omitted, they are {DEFAULT_MAX_REPLICAS} and {DEFAULT_MIN_REPLICAS}"
    )))
}
