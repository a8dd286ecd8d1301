//! `GET /api/documents/{name}/activity`: who changed a document and when, per author per
//! minute, newest first (see `storage::activity`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, ApiError, checked};
use crate::storage::versions::{now_ms, parse_time};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
pub(super) struct ActivityQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn activity(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    checked(&api, &name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let time = |field: &str, value: Option<&str>, default: u64| {
        match value {
        None | Some("") => Ok(default),
        Some(text) => parse_time(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{field} must be RFC 3339 in UTC (2026-12-07T10:30:00Z) or milliseconds since the epoch"
            ))
        }),
    }
    };
    let from = time("from", query.from.as_deref(), 0)?;
    // Through the current minute.
    let to = time("to", query.to.as_deref(), now_ms() + 60_000)?;
    if from > to {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let activity = api
        .registry
        .store()
        .activity(&name, from, to, limit)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({"name": name, "activity": activity})))
}
