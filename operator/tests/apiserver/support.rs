//! Small helpers over the admin client: namespaces, Secrets, CollabServers as JSON, conditions,
//! Deployment status (no kubelet runs, so the test reports pods ready, as envtest-based tests
//! do), and waiting.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource as _};
use serde_json::{Value, json};

use collab_operator::crd::CollabServer;

/// How long the operator gets to act on a change (its watches trigger at once; generous for a
/// busy CI machine).
pub const SETTLE: Duration = Duration::from_secs(60);

/// Polls `check` every 250 ms until it gives `Some`, or fails after `timeout` with `what` and
/// the last error.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_owned(),
            Err(error) => format!("{error:#}"),
        };
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} ({last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn create_namespace(admin: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(admin.clone());
    let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    match api.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot create namespace {name}")),
    }
}

/// Creates or replaces a Secret with labels (server-side apply as the test).
pub async fn put_secret(
    admin: &Client,
    namespace: &str,
    name: &str,
    data: &[(&str, &str)],
    labels: &[(&str, &str)],
) -> anyhow::Result<Secret> {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Value::from(*value)))
        .collect();
    let api: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.to_owned());
    secret.data = Some(
        data.iter()
            .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
            .collect(),
    );
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "labels": labels },
        "data": serde_json::to_value(&secret.data)?,
    });
    Ok(api
        .patch(
            name,
            &PatchParams::apply("envtest").force(),
            &Patch::Apply(&patch),
        )
        .await?)
}

fn collab_resource() -> ApiResource {
    ApiResource::erase::<CollabServer>(&())
}

pub fn collab_servers(admin: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(admin.clone(), namespace, &collab_resource())
}

/// A CollabServer object as JSON.
pub fn collab_server(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": CollabServer::api_version(&()),
        "kind": CollabServer::kind(&()),
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// Creates a CollabServer (a person's `kubectl create`).
pub async fn create_collab_server(
    admin: &Client,
    namespace: &str,
    name: &str,
    spec: Value,
) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject =
        serde_json::from_value(collab_server(name, spec)).map_err(kube::Error::SerdeError)?;
    collab_servers(admin, namespace)
        .create(&PostParams::default(), &object)
        .await
}

/// The CollabServer's condition of `type_`.
pub async fn condition(
    admin: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
) -> anyhow::Result<Option<Condition>> {
    let object = collab_servers(admin, namespace).get(name).await?;
    let conditions = object.data["status"]["conditions"].clone();
    if conditions.is_null() {
        return Ok(None);
    }
    let conditions: Vec<Condition> = serde_json::from_value(conditions)?;
    Ok(conditions.into_iter().find(|c| c.type_ == type_))
}

/// Waits until the condition `type_` has `status`; returns it.
pub async fn wait_condition(
    admin: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> anyhow::Result<Condition> {
    wait_for(
        &format!("{namespace}/{name} {type_}={status}"),
        SETTLE,
        || async move {
            let found = condition(admin, namespace, name, type_).await?;
            Ok(found.filter(|c| c.status == status))
        },
    )
    .await
}

pub async fn deployment(
    admin: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<Deployment>> {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
    Ok(api.get_opt(name).await?)
}

pub async fn wait_deployment(
    admin: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Deployment> {
    wait_for(
        &format!("Deployment {namespace}/{name}"),
        SETTLE,
        || async move { deployment(admin, namespace, name).await },
    )
    .await
}

/// Reports every pod of the Deployment ready and available, as the Deployment controller
/// would once the kubelet ran them (status subresource, as the admin).
pub async fn mark_ready(admin: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
    let current = api.get(name).await?;
    let replicas = current
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let generation = current.metadata.generation.unwrap_or(1);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                  "lastUpdateTime": now, "lastTransitionTime": now },
                { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                  "lastUpdateTime": now, "lastTransitionTime": now },
            ],
        }
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cannot set the status of Deployment {namespace}/{name}"))?;
    Ok(())
}
