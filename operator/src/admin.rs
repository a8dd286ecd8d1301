//! The operator's HTTP listener: `/health` (liveness, see [`crate::health`]) and `/metrics`
//! (Prometheus).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::net::TcpListener;

use crate::health::Health;
use crate::metrics::Metrics;

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|State(state): State<AdminState>| async move {
                match state.health.report(Instant::now()) {
                    Ok(body) => (StatusCode::OK, body),
                    Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(state): State<AdminState>| async move { state.metrics.render() }),
        )
        .with_state(AdminState { metrics, health })
}

/// Serves [`router`] until the future is dropped.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!(%address, "admin listener started");
    axum::serve(listener, router(metrics, health)).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn setup() -> (Arc<Metrics>, Arc<Health>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        let health = Arc::new(Health::new(LEASE, Some(metrics.leader.clone())));
        (metrics, health)
    }

    #[tokio::test]
    async fn health_without_leader_election_is_ok_while_the_controller_runs() {
        let (metrics, health) = setup();
        health.running();
        let (status, body) = get(router(metrics.clone(), health.clone()), "/health").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        let (_, text) = get(router(metrics, health), "/metrics").await;
        assert!(text.contains("collab_operator_leader 1"), "{text}");
    }

    #[tokio::test]
    async fn health_of_a_standby_is_ok_and_says_standby() {
        let (metrics, health) = setup();
        health.standby("collab-system/collab-operator");
        let (status, body) = get(router(metrics.clone(), health.clone()), "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("standby"), "{body}");
        let (_, text) = get(router(metrics, health), "/metrics").await;
        assert!(text.contains("collab_operator_leader 0"), "{text}");
    }

    #[tokio::test]
    async fn health_of_a_leader_that_renews_is_ok() {
        let (metrics, health) = setup();
        health.leading("collab-system/collab-operator", Instant::now());
        let (status, body) = get(router(metrics, health), "/health").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "leader"));
    }

    #[tokio::test]
    async fn health_of_a_leader_that_stopped_renewing_is_503() {
        let (metrics, health) = setup();
        let long_ago = Instant::now()
            .checked_sub(LEASE + Duration::from_secs(5))
            .expect("the monotonic clock is past 20 s");
        health.leading("collab-system/collab-operator", long_ago);
        let (status, body) = get(router(metrics, health), "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not renewed"), "{body}");
    }

    #[tokio::test]
    async fn health_after_the_controller_stopped_is_503_with_the_reason() {
        let (metrics, health) = setup();
        health.running();
        health.stopped("the CollabServer CRD is not installed");
        let (status, body) = get(router(metrics, health), "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "controller stopped: the CollabServer CRD is not installed"
        );
    }
}
