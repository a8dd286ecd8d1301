//! The HTTP surface, on the same port as the WebSocket: `/health`, `/ready`, `/metrics`, and a
//! WebSocket upgrade on every other path (Hocuspocus ignores the path; y-websocket puts its room
//! there).
//!
//! With `COLLAB_SERVER_API_SECRET` set, the document API ([`crate::api`]) is under `/api`, on
//! this port and the admin port (or on the admin port only).
//!
//! With a metrics port configured, `/metrics` is served only there, and the public `/ready`
//! says only whether the server is ready: why it is not (database or Redis errors) goes to the
//! log and to the admin port's `/ready`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::connection::admission::Admission;
use crate::connection::socket::{self, Handshake};
use crate::connection::{self, Context, Upgrade};
/// `/ready` answers within this, even while the database hangs (probes time out at 1 s+).
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Shared by every handler.
pub struct AppState {
    pub context: Arc<Context>,
    pub max_message_bytes: usize,
    pub admission: Arc<Admission>,
    /// A separate admin port serves `/metrics` and readiness details.
    pub admin_port: bool,
    /// Set on SIGTERM: `/ready` turns 503 so load balancers stop sending new clients.
    pub draining: AtomicBool,
    /// Serve the collaborative editor at `/` ([`crate::demo`]).
    pub demo: bool,
    /// The document API, and whether it is served on the admin port only.
    pub api: Option<(Arc<crate::api::Api>, bool)>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let router = Router::new().route("/health", get(health));
    let router = if state.admin_port {
        router.route("/ready", get(public_ready))
    } else {
        router
            .route("/ready", get(ready))
            .route("/metrics", get(metrics))
    };
    let router = router.fallback(websocket).with_state(state.clone());
    match &state.api {
        Some((api, false)) => crate::api::router(api.clone()).merge(router),
        _ => router,
    }
}

/// The admin router (a separate port, if configured): health, readiness and metrics only.
pub fn admin_router(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    match &state.api {
        Some((api, _)) => crate::api::router(api.clone()).merge(router),
        None => router,
    }
}

/// `/ready` for the public port when an admin port exists: the status, no error text.
async fn public_ready(state: State<Arc<AppState>>) -> Response {
    let response = ready(state).await;
    let status = response.status();
    let body = if status.is_success() {
        json!({"status": "ready"})
    } else {
        json!({"status": "unavailable"})
    };
    (status, axum::Json(body)).into_response()
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "healthy"}))
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    let registry = &state.context.registry;
    let storage = async {
        match tokio::time::timeout(READY_TIMEOUT, registry.store().ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!(
                "the database did not answer within {} s",
                READY_TIMEOUT.as_secs()
            )),
        }
    };
    let redis = async {
        match registry.cluster() {
            Some(cluster) => cluster.ping().await.err().map(|error| error.to_string()),
            None => None,
        }
    };
    let (storage, redis) = tokio::join!(storage, redis);
    state
        .context
        .metrics
        .dependency_up
        .with_label_values(&["store"])
        .set(i64::from(storage.is_none()));
    if storage.is_none() && redis.is_none() {
        return axum::Json(json!({"status": "ready"})).into_response();
    }
    tracing::warn!(storage = ?storage, redis = ?redis, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": "unavailable", "storage": storage, "redis": redis})),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if let Some(healthy) = state.context.auth.keys_healthy() {
        state
            .context
            .metrics
            .dependency_up
            .with_label_values(&["jwks"])
            .set(i64::from(healthy));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.context.metrics.render(),
    )
}

async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    mut request: Request,
) -> Response {
    let accept = match socket::handshake(request.method(), &headers) {
        Handshake::Accept(accept) => accept,
        Handshake::Unsupported(why) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                format!("not a WebSocket handshake this server accepts: {why}\n"),
            )
                .into_response();
        }
        Handshake::NotWebSocket => {
            if state.demo
                && let Some(page) = crate::demo::asset(uri.path())
            {
                return page;
            }
            if uri.path() == "/" {
                return (
                    StatusCode::OK,
                    "collab-server: connect with a Hocuspocus or y-websocket client\n",
                )
                    .into_response();
            }
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "server is shutting down").into_response();
    }
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded to a WebSocket\n",
        )
            .into_response();
    };
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let client = state.admission.client_ip(peer.ip(), &headers);
    let ticket = match state.admission.admit(client) {
        Ok(ticket) => ticket,
        Err(refused) => {
            state
                .context
                .metrics
                .closes
                .with_label_values(&[refused.kind()])
                .inc();
            let status = match refused {
                connection::admission::Refused::Full => StatusCode::SERVICE_UNAVAILABLE,
                connection::admission::Refused::PerAddress => StatusCode::TOO_MANY_REQUESTS,
            };
            return (status, refused.to_string()).into_response();
        }
    };
    let request = state.context.registry.webhooks().map(|_| {
        let mut headers_json = serde_json::Map::new();
        for (name, value) in &headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers_json.get_mut(name.as_str()) {
                Some(serde_json::Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    headers_json.insert(name.as_str().to_owned(), value.into());
                }
            }
        }
        Arc::new(crate::webhook::RequestInfo {
            headers: headers_json,
            parameters: query
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        })
    });
    let info = Upgrade {
        path: uri.path().trim_start_matches('/').to_owned(),
        token: query.get("token").cloned(),
        request,
        client,
    };
    let context = state.context.clone();
    let max_message_bytes = state.max_message_bytes;
    // The socket's own task starts once hyper hands the connection over; this one ends there,
    // so nothing of the HTTP exchange stays with the socket.
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade did not complete");
                return;
            }
        };
        let (reader, writer) =
            socket::split(hyper_util::rt::TokioIo::new(upgraded), max_message_bytes);
        tokio::spawn(connection::serve(reader, writer, context, info, ticket));
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
