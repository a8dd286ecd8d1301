//! `/api/documents/{name}/versions`: named versions of a document, read and restored.
//!
//! A version is the document's durable state when it was asked for (the room answers once
//! everything applied before the request is stored), kept in the store beside the document
//! and deleted with it. A restore is an ordinary change: the document's roots are set to the
//! version's content through the same minimal edits as `PUT /api/documents/{name}`, so live
//! providers on every replica see it at once and an offline client's edits merge with it as
//! Yjs merges; the state just before is first kept as a version of its own.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, ApiError, ReadQuery, checked, json as yjson, render, wanted_format};
use crate::document::{Request, RequestError};
use crate::storage::versions::{NewVersion, now_ms};
use crate::storage::{StoreError, VersionInfo};

/// Longest label and author, in characters.
const MAX_LABEL_CHARS: usize = 256;
/// Page size of the version list unless `limit` says otherwise, and its largest.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Who made a version through the API unless the request says.
pub const API_AUTHOR: &str = crate::storage::activity::API_AUTHOR;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    label: Option<String>,
    author: Option<String>,
}

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Superseded { document, .. } => ApiError::new(
            StatusCode::CONFLICT,
            format!("document {document} was deleted meanwhile; nothing was kept"),
        ),
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

fn unknown_version(name: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("document {name} has no version {id}"),
    )
}

/// An optional JSON body: empty (or only whitespace) is the default.
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not {what}: {e}")))
}

/// A label or author, when given: 1 to [`MAX_LABEL_CHARS`] characters.
fn checked_text(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    if value
        .as_ref()
        .is_some_and(|v| v.is_empty() || v.chars().count() > MAX_LABEL_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to {MAX_LABEL_CHARS} characters"
        )));
    }
    Ok(())
}

/// Version ids are integers; anything else names no version.
fn version_id(name: &str, id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| unknown_version(name, id))
}

/// Makes a version of the document's durable state now. `None` when the document holds
/// nothing (a version of nothing is refused: 404, as reading it is).
pub async fn make_version(
    api: &Api,
    name: &str,
    label: Option<String>,
    author: String,
) -> Result<Option<VersionInfo>, ApiError> {
    let (state, generation) = api
        .registry
        .request(name, |reply| Request::Durable { reply })
        .await?;
    if state.as_slice() == [0, 0] {
        return Ok(None);
    }
    let limit = api.registry.max_document_bytes();
    if limit > 0 && state.len() > limit {
        return Err(RequestError::TooLarge(limit).into());
    }
    // A document's versions together count against its limit, as its content does.
    if let Err(taken) = api
        .registry
        .version_fits(name, state.len())
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "document {name}'s versions take {taken} bytes; with this one ({} bytes) they \
                 would exceed COLLAB_SERVER_MAX_DOCUMENT_BYTES ({limit}): delete versions or \
                 set a retention (COLLAB_SERVER_VERSIONS_KEEP, _MAX_AGE, _MAX_BYTES)",
                state.len()
            ),
        ));
    }
    let version = NewVersion {
        label,
        author,
        created_at: now_ms(),
        content: state,
    };
    let info = api
        .registry
        .store()
        .create_version(name, generation, &version)
        .await
        .map_err(store_error)?;
    api.registry.versions_made(name, &info).await;
    Ok(Some(info))
}

/// `POST /api/documents/{name}/versions` with an optional `{"label": "...", "author": "..."}`.
pub(super) async fn create(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<VersionInfo>), ApiError> {
    checked(&api, &name)?;
    let body = body?;
    let body: CreateBody = optional_json(&body, "a version")?;
    checked_text("label", &body.label)?;
    checked_text("author", &body.author)?;
    let author = body.author.unwrap_or_else(|| API_AUTHOR.to_owned());
    match make_version(&api, &name, body.label, author).await? {
        Some(info) => Ok((StatusCode::CREATED, Json(info))),
        None => Err(ApiError::never_written(&name)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/documents/{name}/versions`: newest first, paged like the document list.
pub(super) async fn list(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let before = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(
            cursor
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("malformed cursor"))?,
        ),
        None => None,
    };
    let mut versions = api
        .registry
        .store()
        .versions(&name, before, limit + 1)
        .await
        .map_err(store_error)?;
    let next = if versions.len() > limit as usize {
        versions.truncate(limit as usize);
        versions.last().map(|v| v.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({"versions": versions, "nextCursor": next})))
}

/// `GET /api/documents/{name}/versions/{id}`: the document as of that version, in the formats
/// of `GET /api/documents/{name}`.
pub(super) async fn read(
    State(api): State<Arc<Api>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    checked(&api, &name)?;
    let (format, root) = wanted_format(&headers, query)?;
    let id = version_id(&name, &id)?;
    let (_, content) = api
        .registry
        .store()
        .version(&name, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| unknown_version(&name, &id.to_string()))?;
    // Read through the bounded decoder, like everything stored.
    crate::protocol::bounded::check_update(&content).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("version {id} of {name} is not a valid Yjs update: {e}"),
        )
    })?;
    render(content, format, root).await
}

/// `DELETE /api/documents/{name}/versions/{id}`.
pub(super) async fn delete(
    State(api): State<Arc<Api>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let id = version_id(&name, &id)?;
    let deleted = api
        .registry
        .store()
        .delete_version(&name, id)
        .await
        .map_err(store_error)?;
    if !deleted {
        return Err(unknown_version(&name, &id.to_string()));
    }
    Ok(Json(json!({"name": name, "id": id, "deleted": true})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    author: Option<String>,
}

/// `POST /api/documents/{name}/versions/{id}/restore`: the document's content becomes the
/// version's, as a change on top of what it holds; what it held first becomes a version.
pub(super) async fn restore(
    State(api): State<Arc<Api>>,
    Path((name, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let id = version_id(&name, &id)?;
    let body = body?;
    let body: RestoreBody = optional_json(&body, "a restore")?;
    checked_text("author", &body.author)?;
    let author = body.author.unwrap_or_else(|| API_AUTHOR.to_owned());
    let (info, content) = api
        .registry
        .store()
        .version(&name, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| unknown_version(&name, &id.to_string()))?;
    let roots = tokio::task::spawn_blocking(move || yjson::document_of_state(&content))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("version {id} of {name} cannot be read: {e}"),
            )
        })?;
    let previous = make_version(
        &api,
        &name,
        Some(format!("Before restoring version {id}")),
        author.clone(),
    )
    .await?;
    let roots = Arc::new(roots);
    api.registry
        .request(&name, |reply| {
            let roots = roots.clone();
            Request::Edit {
                edit: Box::new(move |txn: &mut yrs::TransactionMut<'_>| {
                    yjson::restore(txn, &roots)
                }),
                reply,
            }
        })
        .await
        .map_err(|error| match error {
            RequestError::Refused(reason) => ApiError::new(
                StatusCode::CONFLICT,
                format!("version {id} cannot be restored over the document: {reason}"),
            ),
            other => other.into(),
        })?;
    api.registry.version_restored(&name, &info, &author).await;
    Ok(Json(json!({
        "name": name,
        "restored": info,
        "previous": previous,
    })))
}
