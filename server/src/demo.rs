//! The collaborative editor served at `/` (source in `editor/`, built by Vite into
//! `server/static/editor/`, committed and embedded here, so the binary needs no Node).
//!
//! On by default on the embedded default (no authentication configured), off with
//! `COLLAB_SERVER_DEMO=false`, and off whenever authentication is configured unless
//! `COLLAB_SERVER_DEMO=true` (the page then needs `?token=` to open a document). Only plain
//! GETs get these files: a WebSocket upgrade on any path is still a WebSocket.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../static/editor/index.html");
const SCRIPT: &str = include_str!("../static/editor/editor.js");
const STYLE: &str = include_str!("../static/editor/editor.css");

/// The editor's file at `path`, if it is one.
pub fn asset(path: &str) -> Option<Response> {
    let (body, content_type) = match path {
        "/" | "/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/editor.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/editor.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                // Names without content hashes: always revalidate, so an upgrade is seen.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_the_embedded_files() {
        assert!(INDEX.contains("./editor.js") && INDEX.contains("./editor.css"));
        assert!(SCRIPT.contains("HocuspocusProvider") || SCRIPT.len() > 10_000);
        for path in ["/", "/index.html", "/editor.js", "/editor.css"] {
            assert!(asset(path).is_some(), "{path}");
        }
        assert!(asset("/other").is_none());
    }
}
