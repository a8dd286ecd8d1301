//! collab-server: a Yjs sync server that speaks the Hocuspocus protocol (providers 2.x–4.x) and
//! the y-websocket protocol, with durable storage on SQLite or PostgreSQL.
//!
//! A frame's path through the server:
//!
//! ```text
//! socket ─▶ http (upgrade, limits) ─▶ connection (one task per socket: decode with `protocol`,
//!   auth per document with `auth`) ─▶ document room (one task per document: apply with yrs,
//!   fan out to every outbox) ─▶ writer (group commit to `storage`) ─▶ SyncStatus ack
//! ```

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod demo;
pub mod document;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod protocol;
pub mod revocation;
pub mod storage;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::cluster::Cluster;
use crate::config::{AuthConfig, Config};
use crate::connection::admission::{Admission, AdmissionConfig};
use crate::connection::rate::Rate;
use crate::connection::{Context, Limits, OutboxLimits};
use crate::document::{Registry, RoomSettings};
use crate::http::AppState;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Storage(#[from] storage::StoreError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("failed to serve HTTP: {0}")]
    Serve(#[source] std::io::Error),
    #[error("failed to bind the metrics port: {0}")]
    BindMetrics(#[source] std::io::Error),
}

/// A configured rate; 0 means no limit.
fn rate(per_second: f64, burst: f64) -> Rate {
    if per_second <= 0.0 {
        Rate::UNLIMITED
    } else {
        Rate {
            per_second,
            burst: burst.max(1.0),
        }
    }
}

/// An error and its causes, each said once: a library error often repeats its source in its
/// own message (`error sending request: …`), so printing the chain would say it twice.
pub fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
}

/// How long an empty document stays loaded, absorbing quick reconnects.
const ROOM_LINGER: Duration = Duration::from_millis(500);
/// How long start-up waits for the first Redis connection before it says it has none.
const RELAY_START_WAIT: Duration = Duration::from_secs(3);

/// Runs the server on `listener` until `shutdown` is cancelled, then drains: `/ready` turns
/// 503, sockets are closed with 1012 (providers reconnect), every document's updates are
/// stored, and the function returns (or gives up after the configured deadline).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let storage_config = config.storage()?;
    let auth_config = config.auth()?;
    match &auth_config {
        AuthConfig::Anonymous => tracing::warn!(
            "no authentication configured (JWT_SECRET, JWKS_URL or COGNITO_USER_POOL_ID): \
             every client may read and write every document"
        ),
        AuthConfig::Jwt {
            keys,
            issuer,
            audience,
            cognito,
        } => {
            let mode = match (keys, cognito) {
                (config::KeySource::Secret(_), _) => "HS256 tokens (JWT_SECRET)".to_owned(),
                (config::KeySource::Jwks { url }, true) => {
                    format!("Cognito tokens (keys from {url})")
                }
                (config::KeySource::Jwks { url }, false) => {
                    format!("JWKS tokens (keys from {url})")
                }
            };
            tracing::info!(
                issuer = issuer.as_deref().unwrap_or("any"),
                audience = audience.as_deref().unwrap_or("any"),
                "authentication: {mode}, checked when a document is opened (COLLAB_SERVER_TOKEN_EXPIRY={})",
                match config.token_expiry {
                    config::TokenExpiry::Open => "open",
                    config::TokenExpiry::Refresh => "refresh",
                }
            );
        }
    }
    let cluster_config = config.cluster()?;
    let api_secrets = config.api_secrets()?;
    let webhook_config = config.webhook()?;
    tracing::info!(storage = %storage_config, "opening storage");
    let metrics = Arc::new(Metrics::new());
    let store = storage::Instrumented::wrap(storage::open(&storage_config).await?, metrics.clone());
    let cluster_shutdown = CancellationToken::new();
    let cluster = match &cluster_config {
        Some(cluster_config) => {
            tracing::info!(
                identifier = %cluster_config.identifier,
                prefix = %cluster_config.prefix,
                "relaying documents to peer replicas through Redis"
            );
            Some(Cluster::connect(
                cluster_config,
                metrics.clone(),
                cluster_shutdown.clone(),
            )?)
        }
        None => None,
    };
    let rooms_shutdown = CancellationToken::new();
    let registry = Registry::new(
        store,
        metrics.clone(),
        RoomSettings {
            compact_after: config.compact_after.max(1),
            linger: ROOM_LINGER,
            max_document_bytes: config.max_document_bytes,
        },
        rooms_shutdown.clone(),
        cluster.clone(),
    );
    registry.set_version_policy(config.version_policy());
    if let Some(cluster) = &cluster {
        cluster.attach(registry.clone());
        // Said at start, with the cause, not only when a document opens: a wrong REDIS_URL
        // (rediss:// against plain text, a closed port) leaves replicas blind to each other.
        match cluster.wait_connected(RELAY_START_WAIT).await {
            Ok(()) => tracing::info!("Redis relay connected"),
            Err(error) => tracing::warn!(
                error = %error,
                "Redis relay is not connected: replicas do not see each other's edits until it is (it keeps retrying; /ready answers 503 and collab_server_dependency_up{{dependency=\"relay\"}} is 0 meanwhile)"
            ),
        }
    }
    if let Some(webhook_config) = &webhook_config {
        tracing::info!(url = %webhook_config.url, events = ?webhook_config.events, "webhooks enabled");
        registry.set_webhooks(webhook::Webhooks::start(
            webhook_config,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let connections_shutdown = CancellationToken::new();
    // Revocations stored by any replica: in force here from the start, and picked up while
    // running (applied to the live sessions they cover).
    match registry.store().revocations().await {
        Ok(stored) => {
            for revocation in stored {
                registry.revocations().add(revocation);
            }
        }
        Err(error) => tracing::error!(%error, "stored revocations could not be read; retrying"),
    }
    tokio::spawn(revocation::follow(registry.clone(), shutdown.clone()));
    let auth = Authenticator::new(&auth_config).with_revocations(registry.revocations().clone());
    // With a JWKS (Cognito): fetched now, so an unreachable key set is said at start with its
    // cause, not found out by the first client. The server starts either way (the keys are
    // fetched again when a token needs them).
    if let Some(fetched) = auth.prefetch_keys().await {
        let up = metrics.dependency_up.with_label_values(&["jwks"]);
        match fetched {
            Ok(()) => up.set(1),
            Err(cause) => {
                up.set(0);
                tracing::warn!(
                    error = %cause,
                    "token keys (JWKS) could not be fetched: every token is refused until they can be"
                );
            }
        }
    }
    let context = Arc::new(Context {
        registry: registry.clone(),
        auth,
        metrics: metrics.clone(),
        limits: Limits {
            max_documents_per_connection: config.max_documents_per_connection.max(1),
            outbox: OutboxLimits {
                frames: config.outbound_queue,
                bytes: config.outbound_queue_bytes.max(1),
                send_timeout: config.send_timeout(),
            },
            idle_timeout: config.idle_timeout(),
            keepalive: config.keepalive(),
            token_expiry: config.token_expiry,
            messages: rate(
                f64::from(config.rate_messages_per_sec),
                f64::from(config.rate_messages_burst),
            ),
            bytes: rate(
                config.rate_bytes_per_sec as f64,
                config.rate_bytes_burst as f64,
            ),
        },
        shutdown: connections_shutdown.clone(),
    });
    let admission = Admission::new(AdmissionConfig {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        trusted_proxies: config.trusted_proxies.clone(),
    });
    let api = (!api_secrets.is_empty()).then(|| {
        tracing::info!(
            admin_only = config.api_admin_only,
            "document API enabled at /api/documents"
        );
        (
            api::Api::new(
                &api_secrets,
                registry.clone(),
                metrics.clone(),
                usize::try_from(config.api_max_body_bytes).unwrap_or(usize::MAX),
                api::rate_limit::RateLimit::new(config.api_rate_per_sec, config.api_rate_burst),
                admission.clone(),
            ),
            config.api_admin_only,
        )
    });
    let demo = config.demo.unwrap_or(auth_config == AuthConfig::Anonymous);
    let state = Arc::new(AppState {
        demo,
        api,
        context,
        max_message_bytes: config.max_message_bytes,
        admission: admission.clone(),
        admin_port: config.metrics_port.is_some(),
        draining: AtomicBool::new(false),
    });

    if let Some(port) = config.metrics_port {
        let admin = TcpListener::bind((config.host, port))
            .await
            .map_err(Error::BindMetrics)?;
        let router = http::admin_router(state.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(admin, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "metrics listener failed");
            }
        });
    }

    let address = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(%address, "listening");
    if demo {
        // A browser cannot open 0.0.0.0 everywhere: name loopback for an any-address bind.
        let browsable = if address.ip().is_unspecified() {
            format!("localhost:{}", address.port())
        } else {
            address.to_string()
        };
        tracing::info!(
            "collaborative editor at http://{browsable}/ (COLLAB_SERVER_DEMO=false turns it off)"
        );
    }
    let deadline = config.shutdown_timeout();
    let draining = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        let connections_shutdown = connections_shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tracing::info!(
                deadline_secs = deadline.as_secs(),
                "shutting down: closing sockets and storing documents"
            );
            state.draining.store(true, Ordering::Relaxed);
            connections_shutdown.cancel();
        }
    };
    // TCP_NODELAY: a SyncStatus written while the echo of the same update is still unacked
    // would otherwise wait for the client's delayed ACK (about 40 ms) under Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "failed to set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        http::router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(draining);
    let drained = async {
        server.await.map_err(Error::Serve)?;
        rooms_shutdown.cancel();
        registry.drain().await;
        cluster_shutdown.cancel();
        Ok::<(), Error>(())
    };
    let shutdown_started = async {
        shutdown.cancelled().await;
        tokio::time::sleep(deadline).await;
    };
    tokio::select! {
        result = drained => {
            result?;
            tracing::info!("all documents stored; bye");
        }
        _ = shutdown_started => {
            tracing::error!(
                still_loaded = registry.loaded(),
                "shutdown deadline passed; exiting with documents still open (unacknowledged updates may be lost)"
            );
        }
    }
    Ok(())
}
