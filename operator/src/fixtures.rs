//! Test support: a CollabServer builder and a fake API server on `tower_test::mock::pair`
//! that answers like Kubernetes would and records every request, so a test can assert the
//! exact calls a reconcile made (the controller-rs `fixtures.rs` pattern).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::{
    ByteString,
    api::{apps::v1::DeploymentStatus, core::v1::Secret},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{Client, client::Body};
use serde_json::{Value, json};

use crate::controller::Context;
use crate::crd::CollabServer;
use crate::metrics::Metrics;
use crate::validate::OperatorDefaults;

pub const NAMESPACE: &str = "team";
pub const NAME: &str = "docs";
pub const UID: &str = "0b9a6a0e-6a1c-4c43-9b77-1f3c9a1c2b11";

/// The time every condition is stamped with.
pub fn fixed_time() -> Time {
    Time("2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap())
}

/// A CollabServer as the API server would hand it to the controller.
pub fn collab_server(spec: Value) -> CollabServer {
    serde_json::from_value(json!({
        "apiVersion": "collab.zedi.dev/v1alpha1",
        "kind": "CollabServer",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": UID,
            "generation": 3,
        },
        "spec": spec,
    }))
    .expect("valid CollabServer")
}

/// A Secret in the test namespace (values as plain strings).
pub fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    secret_at(name, "1", data)
}

/// [`secret`] at a given resourceVersion.
pub fn secret_at(name: &str, resource_version: &str, data: &[(&str, &str)]) -> Value {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            resource_version: Some(resource_version.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    serde_json::to_value(secret).unwrap()
}

/// A child object that already exists (for pruning), by plural.
pub struct Existing {
    pub plural: &'static str,
    pub name: &'static str,
    /// Owned (controller reference to the test CollabServer)?
    pub owned: bool,
}

/// What the fake cluster holds.
#[derive(Default)]
pub struct World {
    pub server: Option<CollabServer>,
    pub secrets: Vec<Value>,
    pub existing: Vec<Existing>,
    pub service_monitor_crd: bool,
    /// Status the server Deployment reports after it is applied.
    pub deployment_status: Option<DeploymentStatus>,
    /// Status the managed Redis Deployment reports after it is applied.
    pub redis_status: Option<DeploymentStatus>,
    /// The server Deployment exists before the reconcile (with `deployment_status`), so a
    /// failed reconcile can read it.
    pub deployment_exists: bool,
    /// Server-side apply of an object whose path ends with this fails with a 500.
    pub fail_patch: Option<&'static str>,
    /// Server-side apply of an object whose path ends with this is refused with a 422, as for
    /// a change to an immutable field.
    pub invalid_patch: Option<&'static str>,
    /// Reading a single Deployment fails with a 500.
    pub fail_get_deployments: bool,
}

/// One request the fake API server received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    /// `METHOD path`, e.g. `PATCH /apis/apps/v1/namespaces/team/deployments/docs`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub fn field_manager(&self) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|pair| pair.strip_prefix("fieldManager="))
    }
}

/// A later time, for checking that unchanged conditions keep their transition time.
pub fn later_time() -> Time {
    Time("2026-01-02T04:00:00Z".parse::<Timestamp>().unwrap())
}

/// A context whose client talks to the fake API server, and the server's task.
pub fn context(world: World) -> (Arc<Context>, tokio::task::JoinHandle<Vec<Call>>) {
    context_at(world, fixed_time)
}

/// [`context`] with another clock.
pub fn context_at(
    world: World,
    clock: fn() -> Time,
) -> (Arc<Context>, tokio::task::JoinHandle<Vec<Call>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NAMESPACE);
    let mut context = Context::new(
        client,
        Arc::new(Metrics::new().unwrap()),
        OperatorDefaults::default(),
        Some("collab-operator-test".to_owned()),
    );
    context.clock = clock;
    let server = tokio::spawn(serve(handle, world));
    (Arc::new(context), server)
}

/// Drops the context (closing the client) and returns every call the server received.
pub async fn finish(
    context: Arc<Context>,
    server: tokio::task::JoinHandle<Vec<Call>>,
) -> Vec<Call> {
    drop(context);
    // A guard against a hang, not a timing assertion.
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the fake API server stops once the client is dropped")
        .expect("the fake API server does not panic")
}

async fn serve(
    handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    world: World,
) -> Vec<Call> {
    let mut handle = pin!(handle);
    let mut calls = Vec::new();
    let mut deployments: BTreeMap<String, Value> = BTreeMap::new();
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let (status, reply) = answer(&world, &method, &path, &body, &mut deployments);
        calls.push(Call {
            method,
            path,
            query,
            body,
        });
        // A string reply is sent as plain text: what the API server answers for a group it
        // does not serve (`404 page not found`), not a Status object.
        let body = match &reply {
            Value::String(text) => text.clone().into_bytes(),
            other => serde_json::to_vec(other).unwrap(),
        };
        let response = Response::builder()
            .status(status)
            .body(Body::from(body))
            .unwrap();
        send.send_response(response);
    }
    calls
}

/// A real API server's answer for a path under an API group it does not serve: plain text, no
/// Status object.
fn page_not_found() -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!("404 page not found\n"))
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found",
        }),
    )
}

fn deployment_status(world: &World, name: &str) -> Option<Value> {
    let status = if name == NAME {
        world.deployment_status.as_ref()
    } else if name == format!("{NAME}-redis") {
        world.redis_status.as_ref()
    } else {
        None
    };
    status.map(|status| serde_json::to_value(status).unwrap())
}

fn answer(
    world: &World,
    method: &str,
    path: &str,
    body: &Value,
    deployments: &mut BTreeMap<String, Value>,
) -> (StatusCode, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let failure = || {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd timed out",
            }),
        )
    };
    if method == "PATCH"
        && world
            .fail_patch
            .is_some_and(|suffix| path.ends_with(suffix))
    {
        return failure();
    }
    if method == "PATCH"
        && world
            .invalid_patch
            .is_some_and(|suffix| path.ends_with(suffix))
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "Invalid", "code": 422,
                "message": "PersistentVolumeClaim \"docs-data\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests",
            }),
        );
    }
    match method {
        "GET"
            if world.fail_get_deployments
                && segments.len() == 7
                && segments[5] == "deployments" =>
        {
            failure()
        }
        "GET" if path == "/apis/monitoring.coreos.com/v1" => {
            if world.service_monitor_crd {
                (
                    StatusCode::OK,
                    json!({
                        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
                        "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "create", "patch", "delete"]}],
                    }),
                )
            } else {
                page_not_found()
            }
        }
        "GET" if segments.len() == 7 && segments[5] == "deployments" => {
            let name = segments[6];
            let stored = deployments.get(name).cloned().or_else(|| {
                (world.deployment_exists && name == NAME).then(|| {
                    json!({
                        "apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": { "name": NAME, "namespace": NAMESPACE, "generation": 1 },
                        "spec": { "replicas": 2, "selector": {}, "template": {} },
                    })
                })
            });
            match stored {
                Some(mut deployment) => {
                    if let Some(status) = deployment_status(world, name) {
                        deployment["status"] = status;
                    }
                    (StatusCode::OK, deployment)
                }
                None => not_found(),
            }
        }
        "GET" if segments.len() == 6 && segments[4] == "secrets" => world
            .secrets
            .iter()
            .find(|secret| secret["metadata"]["name"] == segments[5])
            .map(|secret| (StatusCode::OK, secret.clone()))
            .unwrap_or_else(not_found),
        "GET" => {
            let plural = segments.last().copied().unwrap_or_default();
            if plural == "servicemonitors" && !world.service_monitor_crd {
                return page_not_found();
            }
            let items: Vec<Value> = world
                .existing
                .iter()
                .filter(|existing| existing.plural == plural)
                .map(|existing| {
                    let owners = if existing.owned {
                        json!([{
                            "apiVersion": "collab.zedi.dev/v1alpha1", "kind": "CollabServer",
                            "name": NAME, "uid": UID, "controller": true,
                        }])
                    } else {
                        json!([])
                    };
                    json!({
                        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                        "metadata": { "name": existing.name, "namespace": NAMESPACE, "ownerReferences": owners },
                    })
                })
                .collect();
            (
                StatusCode::OK,
                json!({
                    "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                    "metadata": {}, "items": items,
                }),
            )
        }
        "PATCH" if path.ends_with("/status") => {
            let mut server = serde_json::to_value(world.server.as_ref().unwrap()).unwrap();
            server["status"] = body["status"].clone();
            (StatusCode::OK, server)
        }
        "PATCH" if segments.len() == 7 && segments[5] == "deployments" => {
            let name = segments[6].to_owned();
            let mut deployment = if body["spec"].get("selector").is_some() {
                body.clone()
            } else {
                // The replicas-only apply: the stored object with the new count.
                let mut stored = deployments.get(&name).cloned().unwrap();
                stored["spec"]["replicas"] = body["spec"]["replicas"].clone();
                stored
            };
            deployments.insert(name.clone(), deployment.clone());
            if let Some(status) = deployment_status(world, &name) {
                deployment["status"] = status;
            }
            (StatusCode::OK, deployment)
        }
        "PATCH" | "POST" => (StatusCode::OK, body.clone()),
        "DELETE" => (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ),
        _ => panic!("unexpected request {method} {path}"),
    }
}
