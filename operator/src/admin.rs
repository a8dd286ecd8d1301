//! The operator's HTTP listener: `/health` (liveness) and `/metrics` (Prometheus).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Router, extract::State, routing::get};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(metrics): State<Arc<Metrics>>| async move { metrics.render() }),
        )
        .with_state(metrics)
}

/// Serves [`router`] until the future is dropped.
pub async fn serve(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!(%address, "admin listener started");
    axum::serve(listener, router(metrics)).await
}
