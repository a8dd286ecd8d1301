//! [`run`] against a fake API server that answers every list with an empty list and every
//! watch with an empty stream, recording the requests: what the controller lists and watches
//! in each scope. The test stops the controller once every expected watch was asked for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Mutex;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::json;

use super::*;
use crate::fixtures;

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: String,
}

impl Seen {
    fn label_selector(&self) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            pair.strip_prefix("labelSelector=")
                .map(|value| value.replace("%3D", "=").replace("%2F", "/"))
        })
    }
}

/// Every resource path the controller lists and watches in `namespace`.
fn expected_paths(namespace: &str) -> BTreeSet<String> {
    [
        format!("/apis/collab.zedi.dev/v1alpha1/namespaces/{namespace}/collabservers"),
        format!("/apis/apps/v1/namespaces/{namespace}/deployments"),
        format!("/api/v1/namespaces/{namespace}/services"),
        format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"),
        format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"),
        format!("/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"),
        format!("/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"),
        format!("/api/v1/namespaces/{namespace}/secrets"),
    ]
    .into()
}

/// Runs the controller in `scopes` until it has asked for every path of `expected` (and both
/// Secret selectors in each scope), then stops it and returns every request.
async fn requests_of(scopes: Vec<Scope>, expected: BTreeSet<String>) -> Vec<Seen> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, fixtures::NAMESPACE);
    let context = Arc::new(Context::new(
        client,
        Arc::new(Metrics::new().unwrap()),
        OperatorDefaults::default(),
        Some("collab-operator-test".to_owned()),
    ));
    let shutdown = CancellationToken::new();
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let server = {
        let seen = seen.clone();
        let shutdown = shutdown.clone();
        let secret_watches = 2 * scopes.len();
        tokio::spawn(async move {
            let mut handle = pin!(handle);
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_owned();
                let query = request.uri().query().unwrap_or_default().to_owned();
                let watch = query.split('&').any(|pair| pair == "watch=true");
                let mut seen = seen.lock().unwrap();
                seen.push(Seen { path, query });
                let paths: BTreeSet<String> = seen.iter().map(|s| s.path.clone()).collect();
                let secret_selectors: BTreeSet<(String, Option<String>)> = seen
                    .iter()
                    .filter(|s| s.path.ends_with("/secrets"))
                    .map(|s| (s.path.clone(), s.label_selector()))
                    .collect();
                if expected.is_subset(&paths) && secret_selectors.len() >= secret_watches {
                    shutdown.cancel();
                }
                drop(seen);
                let body = if watch {
                    Vec::new()
                } else {
                    serde_json::to_vec(&json!({
                        "apiVersion": "v1", "kind": "List",
                        "metadata": { "resourceVersion": "1" }, "items": [],
                    }))
                    .unwrap()
                };
                send.send_response(
                    Response::builder()
                        .status(StatusCode::OK)
                        .body(Body::from(body))
                        .unwrap(),
                );
            }
        })
    };
    let cancelled = shutdown.clone();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        run(context.clone(), &scopes, shutdown),
    )
    .await;
    let Ok(result) = result else {
        panic!(
            "hang guard: cancelled {}, requests {:#?}",
            cancelled.is_cancelled(),
            seen.lock().unwrap()
        );
    };
    result.expect("the controller runs");
    drop(context);
    server.abort();
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn with_one_namespace_everything_is_listed_and_watched_in_it() {
    let seen = requests_of(
        vec![Scope::Namespace("team".to_owned())],
        expected_paths("team"),
    )
    .await;
    assert_eq!(
        seen[0].path,
        "/apis/collab.zedi.dev/v1alpha1/namespaces/team/collabservers"
    );
    assert!(seen[0].query.contains("limit=1"), "{:?}", seen[0]);
    for request in &seen {
        assert!(
            request.path.contains("/namespaces/team/"),
            "outside the namespace: {request:?}"
        );
    }
}

#[tokio::test]
async fn secrets_are_watched_only_by_the_managed_and_reload_labels() {
    let seen = requests_of(
        vec![Scope::Namespace("team".to_owned())],
        expected_paths("team"),
    )
    .await;
    let selectors: BTreeSet<Option<String>> = seen
        .iter()
        .filter(|request| request.path.ends_with("/secrets"))
        .map(Seen::label_selector)
        .collect();
    assert_eq!(
        selectors,
        BTreeSet::from([
            Some("app.kubernetes.io/managed-by=collab-operator".to_owned()),
            Some("collab.zedi.dev/reload=true".to_owned()),
        ])
    );
    assert_eq!(
        secret_watch_selectors(),
        [
            "app.kubernetes.io/managed-by=collab-operator".to_owned(),
            "collab.zedi.dev/reload=true".to_owned()
        ]
    );
}

#[tokio::test]
async fn with_two_namespaces_one_controller_runs_in_each() {
    let expected: BTreeSet<String> = expected_paths("team-a")
        .into_iter()
        .chain(expected_paths("team-b"))
        .collect();
    let seen = requests_of(
        vec![
            Scope::Namespace("team-a".to_owned()),
            Scope::Namespace("team-b".to_owned()),
        ],
        expected,
    )
    .await;
    for request in &seen {
        assert!(
            request.path.contains("/namespaces/team-a/")
                || request.path.contains("/namespaces/team-b/"),
            "outside the namespaces: {request:?}"
        );
    }
}

#[tokio::test]
async fn cluster_scope_lists_and_watches_every_namespace() {
    let expected: BTreeSet<String> = [
        "/apis/collab.zedi.dev/v1alpha1/collabservers",
        "/apis/apps/v1/deployments",
        "/api/v1/services",
        "/apis/networking.k8s.io/v1/networkpolicies",
        "/apis/networking.k8s.io/v1/ingresses",
        "/apis/policy/v1/poddisruptionbudgets",
        "/apis/autoscaling/v2/horizontalpodautoscalers",
        "/api/v1/secrets",
    ]
    .map(str::to_owned)
    .into();
    let seen = requests_of(vec![Scope::Cluster], expected).await;
    for request in &seen {
        assert!(
            !request.path.contains("/namespaces/"),
            "namespaced in cluster scope: {request:?}"
        );
    }
}
