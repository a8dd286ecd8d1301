//! The document API: an application's backend reads, writes and deletes documents over HTTP.
//!
//! Off unless secrets are configured (`COLLAB_SERVER_API_SECRET`). Every request carries
//! `Authorization: Bearer <secret>`; a wrong or missing one is a 401 and nothing else. Writes go
//! through the document's room exactly like a client's update (live clients see them, peer
//! replicas get them) and are answered once stored, like `SyncStatus`. Reads of a loaded
//! document see its live state; other documents are read from storage without loading them.
//! The routes are described in `docs/api.yaml`.

mod activity;
pub mod json;
pub mod rate_limit;
pub mod versions;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use yrs::Transact;

use crate::config::Secret;
use crate::connection::admission::Admission;
use crate::document::{Edit, JoinError, Registry, Request, RequestError};
use crate::metrics::Metrics;
use crate::storage::Listing;

/// Page size of `GET /api/documents` unless `limit` says otherwise, and its largest.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// What the API needs.
pub struct Api {
    /// SHA-256 of each accepted secret: compared in constant time, and of one length whatever
    /// the secret's.
    secrets: Vec<[u8; 32]>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
    rate_limit: rate_limit::RateLimit,
    /// Who a request comes from (the peer, or what a trusted proxy forwards).
    admission: Arc<Admission>,
}

impl Api {
    pub fn new(
        secrets: &[Secret],
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        max_body_bytes: usize,
        rate_limit: rate_limit::RateLimit,
        admission: Arc<Admission>,
    ) -> Arc<Self> {
        Arc::new(Self {
            secrets: secrets.iter().map(|s| digest(s.expose())).collect(),
            registry,
            metrics,
            max_body_bytes,
            rate_limit,
            admission,
        })
    }

    /// A 429 when the request's client is over the rate limit.
    fn rate_limited(&self, request: &HttpRequest) -> Option<Response> {
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?;
        let client = self.admission.client_ip(peer.0.ip(), request.headers());
        self.rate_limit
            .check(client, Instant::now())
            .err()
            .map(|wait| {
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                let mut response = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "rate limited: too many requests from {client}; retry after {seconds} s"
                    ),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return false;
        };
        let given = digest(token.trim());
        // Every secret is compared, so timing does not tell which one matched.
        self.secrets.iter().fold(0u8, |matched, secret| {
            matched | secret.ct_eq(&given).unwrap_u8()
        }) == 1
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The routes under `/api`.
pub fn router(api: Arc<Api>) -> Router {
    let limit = api.max_body_bytes;
    Router::new()
        .route("/api/documents", get(list))
        .route(
            "/api/documents/{name}",
            get(read).put(replace).delete(delete),
        )
        .route("/api/documents/{name}/updates", post(apply))
        .route("/api/documents/{name}/activity", get(activity::activity))
        .route(
            "/api/documents/{name}/versions",
            get(versions::list).post(versions::create),
        )
        .route(
            "/api/documents/{name}/versions/{id}",
            get(versions::read).delete(versions::delete),
        )
        .route(
            "/api/documents/{name}/versions/{id}/restore",
            post(versions::restore),
        )
        .route("/api/revocations", get(revocations).post(revoke))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(api.clone(), authenticate))
        .with_state(api)
}

/// The rate limit first (unauthenticated callers are counted too), then authentication (nothing
/// else is said to a caller without the secret), then metrics.
async fn authenticate(State(api): State<Arc<Api>>, request: HttpRequest, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| route_label(path.as_str()));
    let method = request.method().clone();
    let route = match (route, method.as_str()) {
        ("documents", _) => "list",
        ("document", "GET") => "read",
        ("document", "PUT") => "replace",
        ("document", "DELETE") => "delete",
        ("updates", _) => "apply",
        ("versions", "POST") => "create_version",
        ("versions", _) => "versions",
        ("version", "GET") => "read_version",
        ("version", _) => "delete_version",
        ("restore", _) => "restore",
        ("activity", _) => "activity",
        ("revocations", "POST") => "revoke",
        ("revocations", _) => "revocations",
        _ => "other",
    };
    let response = if let Some(limited) = api.rate_limited(&request) {
        limited
    } else if api.authorized(request.headers()) {
        next.run(request).await
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized").into_response()
    };
    api.metrics
        .api_requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    api.metrics
        .api_duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/api/documents" => "documents",
        "/api/documents/{name}" => "document",
        "/api/documents/{name}/updates" => "updates",
        "/api/documents/{name}/versions" => "versions",
        "/api/documents/{name}/versions/{id}" => "version",
        "/api/documents/{name}/versions/{id}/restore" => "restore",
        "/api/documents/{name}/activity" => "activity",
        "/api/revocations" => "revocations",
        _ => "other",
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route (percent-encode slashes in document names: /api/documents/org%2Fdoc)",
    )
}

/// An error as JSON: `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn never_written(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("document {name} is not stored: it was never written, or was deleted"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        let status = match &error {
            RequestError::Malformed(_) | RequestError::Invalid(_) | RequestError::Refused(_) => {
                StatusCode::BAD_REQUEST
            }
            RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Join(JoinError::Load(_))
            | RequestError::Join(JoinError::ShuttingDown)
            | RequestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, error.to_string())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    prefix: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Longest a revocation may last: tokens live hours, not months.
const MAX_REVOCATION_SECS: u64 = 30 * 24 * 3600;
/// A revocation's lifetime unless the request says: a day (Cognito's longest ID and access
/// tokens).
const DEFAULT_REVOCATION_SECS: u64 = 24 * 3600;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    subject: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    documents: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

/// `POST /api/revocations`: stored first (every replica and every later start know it), then
/// in force here at once; other replicas take it within `revocation::FOLLOW_INTERVAL`.
async fn revoke(
    State(api): State<Arc<Api>>,
    body: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use crate::revocation::{Mode, Revocation, now_secs};
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.subject.is_empty() || body.subject.len() > 1024 {
        return Err(ApiError::bad_request("subject must be 1 to 1024 bytes"));
    }
    let mode = match body.mode.as_deref() {
        None => Mode::End,
        Some(text) => Mode::parse(text)
            .ok_or_else(|| ApiError::bad_request("mode must be \"end\" or \"read-only\""))?,
    };
    if body
        .documents
        .as_ref()
        .is_some_and(|p| p.is_empty() || p.len() > 1024)
    {
        return Err(ApiError::bad_request(
            "documents must be a pattern of 1 to 1024 bytes",
        ));
    }
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_REVOCATION_SECS);
    if !(1..=MAX_REVOCATION_SECS).contains(&ttl) {
        return Err(ApiError::bad_request(format!(
            "ttlSeconds must be between 1 and {MAX_REVOCATION_SECS}"
        )));
    }
    let now = now_secs();
    // Tokens issued in this very second count as before it (iat has a resolution of seconds).
    let revocation = Revocation {
        subject: body.subject,
        documents: body.documents,
        mode,
        issued_before: now + 1,
        expires_at: now + ttl,
    };
    api.registry
        .store()
        .revoke(&revocation)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    api.registry.revoke(&revocation).await;
    tracing::info!(subject = %revocation.subject, mode = mode.as_str(), documents = ?revocation.documents, "access revoked");
    let json = serde_json::to_value(&revocation)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((StatusCode::CREATED, Json(json)))
}

/// `GET /api/revocations`: those in force.
async fn revocations(State(api): State<Arc<Api>>) -> Result<Json<Value>, ApiError> {
    let list = api.registry.revocations().list();
    Ok(Json(json!({ "revocations": list })))
}

async fn list(
    State(api): State<Arc<Api>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => {
            Some(decode_cursor(cursor).ok_or_else(|| ApiError::bad_request("malformed cursor"))?)
        }
        None => None,
    };
    let listing = Listing {
        prefix: query.prefix.unwrap_or_default(),
        after,
        // One more than the page: whether there is a next page.
        limit: limit + 1,
    };
    let mut documents = api
        .registry
        .store()
        .list(&listing)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let next = if documents.len() > limit as usize {
        documents.truncate(limit as usize);
        documents.last().map(|d| encode_cursor(&d.name))
    } else {
        None
    };
    let documents: Vec<Value> = documents
        .into_iter()
        .map(|d| json!({"name": d.name, "updatedAt": d.updated_at, "size": d.stored_bytes}))
        .collect();
    Ok(Json(json!({"documents": documents, "nextCursor": next})))
}

/// Document names as the WebSocket path takes them (non-empty, at most 1,024 bytes, and what
/// the store's table holds).
fn checked(api: &Api, name: &str) -> Result<(), ApiError> {
    crate::connection::validate_name(name, api.registry.store().max_name_chars()).map_err(
        |reason| {
            ApiError::bad_request(
                reason
                    .strip_prefix("permission-denied: ")
                    .unwrap_or(&reason)
                    .to_owned(),
            )
        },
    )
}

/// Cursors are the last name of a page, hex-encoded (opaque to callers, any name fits a URL).
fn encode_cursor(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Binary,
    Json,
    Text,
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    format: Option<Format>,
    root: Option<String>,
}

async fn read(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    checked(&api, &name)?;
    let (format, root) = wanted_format(&headers, query)?;
    let state = state_of(&api, &name).await?;
    render(state, format, root).await
}

/// The format a read asks for (`?format=`, else JSON if the `Accept` header says so, else
/// binary) and the root it names.
fn wanted_format(
    headers: &HeaderMap,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Format, Option<String>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let format = query.format.unwrap_or(if wants_json {
        Format::Json
    } else {
        Format::Binary
    });
    match (format, query.root) {
        (Format::Text, None) => Err(ApiError::bad_request("format=text needs root=<name>")),
        (_, root) => Ok((format, root)),
    }
}

/// A document's whole state (one v1 update) as a read answers it.
async fn render(
    state: Vec<u8>,
    format: Format,
    root: Option<String>,
) -> Result<Response, ApiError> {
    if format == Format::Binary {
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            state,
        )
            .into_response());
    }
    // Building a document and walking it is CPU work: off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let doc = json::doc_of_state(&state)?;
        let txn = doc.transact();
        Ok::<_, String>(match (format, root) {
            (Format::Text, Some(root)) => json::root_text(&txn, &root).map(Rendered::Text),
            (_, Some(root)) => json::root(&txn, &root).map(Rendered::Json),
            (_, None) => Some(Rendered::Json(Value::Object(json::document(&txn)))),
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    match rendered {
        Some(Rendered::Json(value)) => Ok(Json(value).into_response()),
        Some(Rendered::Text(text)) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            text,
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the document has no such root",
        )),
    }
}

enum Rendered {
    Json(Value),
    Text(String),
}

/// The full state of a document (live if loaded here, else from storage); 404 if empty.
async fn state_of(api: &Api, name: &str) -> Result<Vec<u8>, ApiError> {
    api.registry
        .state(name)
        .await?
        .ok_or_else(|| ApiError::never_written(name))
}

async fn apply(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let body = body?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body must be a Yjs update (Y.encodeStateAsUpdate or an update event's bytes)",
        ));
    }
    // Checked here too, so a malformed body never loads the document.
    crate::protocol::bounded::update(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed update: {e}")))?;
    let update = body.to_vec();
    api.registry
        .request(&name, |reply| Request::Apply {
            update: update.clone(),
            reply,
        })
        .await?;
    Ok(Json(json!({"name": name, "stored": true})))
}

#[derive(Debug, Deserialize)]
struct WriteQuery {
    format: Option<String>,
    mode: Option<String>,
}

async fn replace(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    query: Result<Query<WriteQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if query.format.as_deref().is_some_and(|f| f != "json") {
        return Err(ApiError::bad_request("PUT takes format=json only"));
    }
    let append = match query.mode.as_deref() {
        None | Some("replace") => false,
        Some("append") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "mode must be replace or append, not {other}"
            )));
        }
    };
    let body = body?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let Value::Object(roots) = value else {
        return Err(ApiError::bad_request(
            "the body must be an object of root names to their content",
        ));
    };
    if roots.is_empty() {
        return Err(ApiError::bad_request("the body names no roots"));
    }
    let edit: Arc<dyn Fn() -> Edit + Send + Sync> = if append {
        let roots: Vec<(String, Vec<json::PmNode>)> = roots
            .iter()
            .map(|(root, value)| {
                let nodes = match value {
                    Value::Array(nodes) => nodes.as_slice(),
                    Value::Object(doc) if doc.get("type") == Some(&Value::from("doc")) => {
                        match doc.get("content") {
                            Some(Value::Array(nodes)) => nodes.as_slice(),
                            _ => &[],
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{root}: append takes an array of ProseMirror nodes or a doc"
                        ));
                    }
                };
                Ok((root.clone(), json::parse_nodes(root, nodes, 0)?))
            })
            .collect::<Result<_, String>>()
            .map_err(ApiError::bad_request)?;
        let roots = Arc::new(roots);
        Arc::new(move || {
            let roots = roots.clone();
            Box::new(move |txn: &mut yrs::TransactionMut<'_>| {
                for (root, nodes) in roots.iter() {
                    json::append(txn, root, nodes)?;
                }
                Ok(())
            }) as Edit
        })
    } else {
        let roots: Vec<(String, json::Content)> = roots
            .iter()
            .map(|(root, value)| Ok((root.clone(), json::Content::parse(root, value)?)))
            .collect::<Result<_, String>>()
            .map_err(ApiError::bad_request)?;
        let roots = Arc::new(roots);
        Arc::new(move || {
            let roots = roots.clone();
            Box::new(move |txn: &mut yrs::TransactionMut<'_>| json::replace(txn, &roots)) as Edit
        })
    };
    api.registry
        .request(&name, |reply| Request::Edit {
            edit: edit(),
            reply,
        })
        .await?;
    Ok(Json(json!({"name": name, "stored": true})))
}

async fn delete(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let deleted = api
        .registry
        .request(&name, |reply| Request::Delete {
            reason: "deleted through the document API".into(),
            reply,
        })
        .await?;
    if !deleted {
        return Err(ApiError::never_written(&name));
    }
    Ok(Json(json!({"name": name, "deleted": true})))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::document::RoomSettings;
    use crate::storage::MemoryStore;

    /// Every operation of docs/api.yaml is served (neither 405 nor an unknown route), and the
    /// documented paths answer 405 to every other method: the document and the router agree.
    #[tokio::test]
    async fn the_openapi_document_matches_the_routes() {
        let spec: serde_yaml::Value = serde_yaml::from_str(include_str!("../../../docs/api.yaml"))
            .expect("docs/api.yaml is YAML");
        let paths = spec["paths"].as_mapping().expect("paths");
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(
            Arc::new(MemoryStore::default()),
            metrics.clone(),
            RoomSettings {
                compact_after: 10,
                linger: Duration::ZERO,
                max_document_bytes: 0,
            },
            CancellationToken::new(),
            None,
        );
        let api = Api::new(
            &["s3cret".parse().expect("secret")],
            registry,
            metrics,
            1 << 20,
            rate_limit::RateLimit::new(0, 0),
            Admission::new(Default::default()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router(api)).await });
        let client = reqwest::Client::new();
        let methods = ["get", "put", "post", "delete", "patch"];
        let mut documented = 0;
        for (path, operations) in paths {
            let path = path.as_str().expect("path");
            assert!(path.starts_with("/api/"), "{path}");
            let url = format!(
                "http://{address}{}",
                path.replace("{name}", "probe").replace("{id}", "1")
            );
            for method in methods {
                let response = client
                    .request(method.to_uppercase().parse().expect("method"), &url)
                    .bearer_auth("s3cret")
                    .body("{}")
                    .send()
                    .await
                    .expect("request");
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if operations.get(method).is_some() {
                    documented += 1;
                    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                    assert!(!body.contains("no such route"), "{method} {path}: {body}");
                } else {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} is not documented but served"
                    );
                }
            }
        }
        assert_eq!(
            documented, 13,
            "list, read, replace, delete, apply, revoke, list revocations, the four version \
             operations, restore, activity"
        );
    }

    #[test]
    fn cursors_round_trip_any_name() {
        for name in ["", "a", "org/doc 1", "日本語", "%2F"] {
            assert_eq!(decode_cursor(&encode_cursor(name)).as_deref(), Some(name));
        }
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("abc"), None);
        assert_eq!(decode_cursor("ff"), None, "not UTF-8");
    }
}
