//! Step 4 of the reconcile: server-side apply of [`Resources<Prepared>`] with one field
//! manager and `force` (the operator owns these fields; a person's `kubectl edit` of them is
//! undone), then deletion of labelled children the spec no longer asks for.
//!
//! Order: ServiceAccount and volume first, then Redis, then Services, then the Deployment, then
//! PDB, HPA, ServiceMonitor, NetworkPolicy and Ingress. A volume the API server refuses to change (most of a
//! PersistentVolumeClaim's spec is immutable) does not stop the rest: it becomes a warning the
//! status reports.
//!
//! NB: `spec.replicas` of the server Deployment is applied by a second field manager,
//! [`REPLICAS_FIELD_MANAGER`]. When autoscaling is switched on, the operator stops applying
//! it, but a manager that stops applying keeps owning its fields, so the replica count stays
//! where it was until the HorizontalPodAutoscaler takes over. Had the main manager owned it,
//! omitting it would remove the field and the Deployment would drop to 1 replica for a moment.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::marker::PhantomData;

use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::build::{Applied, Prepared, RedisResources, Resources, service_monitor_resource};
use crate::labels;

/// Field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "collab-operator";
/// Field manager of the server Deployment's `spec.replicas` (see the module docs).
pub const REPLICAS_FIELD_MANAGER: &str = "collab-operator-replicas";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to apply {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("failed to list {kind} objects to prune: {source}")]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },

    #[error("failed to delete {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Apply { .. } => "ApplyFailed",
            Error::List { .. } => "ListFailed",
            Error::Delete { .. } => "DeleteFailed",
        }
    }
}

/// A child the operator deleted because the spec no longer asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// Where and for whom to apply.
pub struct Target<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    /// The CollabServer's name (`app.kubernetes.io/instance`).
    pub instance: &'a str,
    /// The CollabServer's uid: only children it controls are pruned.
    pub owner_uid: &'a str,
    /// The cluster serves `monitoring.coreos.com/v1` ServiceMonitors (discovered, not assumed:
    /// without them there is nothing to prune, and no list is sent).
    pub service_monitors_served: bool,
}

/// What [`apply`] did.
pub struct Outcome {
    /// The objects as the API server stored them.
    pub applied: Resources<Applied>,
    /// Children deleted because the spec no longer asks for them.
    pub deleted: Vec<Deleted>,
    /// Changes the API server refused without stopping the rest (an immutable volume field).
    pub warnings: Vec<String>,
}

/// Applies every object, then prunes.
pub async fn apply(target: &Target<'_>, resources: Resources<Prepared>) -> Result<Outcome, Error> {
    // Destructured without `..`: a new field in `Resources` must be handled here.
    let Resources {
        service_account,
        data_volume,
        redis,
        service,
        metrics_service,
        deployment,
        replicas,
        pod_disruption_budget,
        horizontal_pod_autoscaler,
        service_monitor,
        network_policy,
        ingress,
        state: PhantomData,
    } = resources;

    let mut warnings = Vec::new();
    let service_account = apply_one(target, service_account).await?;
    let data_volume = match data_volume {
        Some(volume) => apply_volume(target, volume, &mut warnings).await?,
        None => None,
    };
    let redis = match redis {
        Some(RedisResources {
            secret,
            service_account,
            network_policy,
            service,
            deployment,
        }) => Some(RedisResources {
            secret: apply_one(target, secret).await?,
            service_account: apply_one(target, service_account).await?,
            network_policy: apply_one(target, network_policy).await?,
            service: apply_one(target, service).await?,
            deployment: apply_one(target, deployment).await?,
        }),
        None => None,
    };
    let service = apply_one(target, service).await?;
    let metrics_service = apply_one(target, metrics_service).await?;
    let mut deployment = apply_one(target, deployment).await?;
    if let Some(replicas) = replicas {
        deployment = apply_replicas(target, &deployment.name_any(), replicas).await?;
    }
    let pod_disruption_budget = apply_optional(target, pod_disruption_budget).await?;
    let horizontal_pod_autoscaler = apply_optional(target, horizontal_pod_autoscaler).await?;
    let service_monitor = match service_monitor {
        Some(object) => Some(apply_service_monitor(target, object).await?),
        None => None,
    };
    let network_policy = apply_optional(target, network_policy).await?;
    let ingress = apply_optional(target, ingress).await?;

    let applied = Resources {
        service_account,
        data_volume,
        redis,
        service,
        metrics_service,
        deployment,
        replicas,
        pod_disruption_budget,
        horizontal_pod_autoscaler,
        service_monitor,
        network_policy,
        ingress,
        state: PhantomData,
    };
    let deleted = prune(target, &applied).await?;
    Ok(Outcome {
        applied,
        deleted,
        warnings,
    })
}

/// Applies the SQLite volume. A 422 (the claim exists and the change touches an immutable
/// field, or shrinks it) keeps the claim as it is and becomes a warning; the pods keep using
/// the existing claim.
async fn apply_volume(
    target: &Target<'_>,
    volume: PersistentVolumeClaim,
    warnings: &mut Vec<String>,
) -> Result<Option<PersistentVolumeClaim>, Error> {
    let name = volume.name_any();
    match apply_one(target, volume).await {
        Ok(applied) => Ok(Some(applied)),
        Err(Error::Apply {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 422 => {
            warnings.push(format!(
                "PersistentVolumeClaim {name} keeps its current spec: the API server refused the change ({}); most of a claim is immutable (only a larger size can be applied, where the StorageClass allows expansion): to change it, back up the documents, delete the claim and let the operator create it again",
                status.message
            ));
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn apply_params(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force()
}

async fn apply_one<K>(target: &Target<'_>, object: K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(target.client.clone(), target.namespace);
    let name = object.name_any();
    api.patch(&name, &apply_params(FIELD_MANAGER), &Patch::Apply(&object))
        .await
        .map_err(|source| Error::Apply {
            kind: K::kind(&()).into_owned(),
            name,
            source,
        })
}

async fn apply_optional<K>(target: &Target<'_>, object: Option<K>) -> Result<Option<K>, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    match object {
        Some(object) => apply_one(target, object).await.map(Some),
        None => Ok(None),
    }
}

async fn apply_replicas(
    target: &Target<'_>,
    name: &str,
    replicas: i32,
) -> Result<Deployment, Error> {
    let api: Api<Deployment> = Api::namespaced(target.client.clone(), target.namespace);
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": { "replicas": replicas },
    });
    api.patch(
        name,
        &apply_params(REPLICAS_FIELD_MANAGER),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: "Deployment".to_owned(),
        name: format!("{name} (replicas)"),
        source,
    })
}

async fn apply_service_monitor(
    target: &Target<'_>,
    object: DynamicObject,
) -> Result<DynamicObject, Error> {
    let resource = service_monitor_resource();
    let api: Api<DynamicObject> =
        Api::namespaced_with(target.client.clone(), target.namespace, &resource);
    let name = object.name_any();
    api.patch(&name, &apply_params(FIELD_MANAGER), &Patch::Apply(&object))
        .await
        .map_err(|source| Error::Apply {
            kind: resource.kind,
            name,
            source,
        })
}

/// Deletes the CollabServer's labelled, controlled children of the pruned kinds that were
/// not just applied. PersistentVolumeClaims are never pruned (they hold documents).
async fn prune(target: &Target<'_>, applied: &Resources<Applied>) -> Result<Vec<Deleted>, Error> {
    let names = |objects: &[Option<String>]| -> BTreeSet<String> {
        objects.iter().flatten().cloned().collect()
    };
    let redis = applied.redis.as_ref();
    let secrets = names(&[redis.map(|redis| redis.secret.name_any())]);
    let service_accounts = names(&[
        Some(applied.service_account.name_any()),
        redis.map(|redis| redis.service_account.name_any()),
    ]);
    let network_policies = names(&[
        redis.map(|redis| redis.network_policy.name_any()),
        applied.network_policy.as_ref().map(ResourceExt::name_any),
    ]);
    let ingresses = names(&[applied.ingress.as_ref().map(ResourceExt::name_any)]);
    // Operators before 0.2 gave the server a ConfigMap; none is wanted now.
    let config_maps = BTreeSet::new();
    let services = names(&[
        Some(applied.service.name_any()),
        Some(applied.metrics_service.name_any()),
        redis.map(|redis| redis.service.name_any()),
    ]);
    let deployments = names(&[
        Some(applied.deployment.name_any()),
        redis.map(|redis| redis.deployment.name_any()),
    ]);
    let budgets = names(&[applied
        .pod_disruption_budget
        .as_ref()
        .map(ResourceExt::name_any)]);
    let autoscalers = names(&[applied
        .horizontal_pod_autoscaler
        .as_ref()
        .map(ResourceExt::name_any)]);
    let monitors = names(&[applied.service_monitor.as_ref().map(ResourceExt::name_any)]);

    let mut deleted = Vec::new();
    deleted.extend(prune_kind(target, typed_api::<Secret>(target), &secrets).await?);
    deleted.extend(
        prune_kind(
            target,
            typed_api::<ServiceAccount>(target),
            &service_accounts,
        )
        .await?,
    );
    deleted.extend(prune_kind(target, typed_api::<ConfigMap>(target), &config_maps).await?);
    deleted.extend(
        prune_kind(
            target,
            typed_api::<NetworkPolicy>(target),
            &network_policies,
        )
        .await?,
    );
    deleted.extend(prune_kind(target, typed_api::<Service>(target), &services).await?);
    deleted.extend(prune_kind(target, typed_api::<Deployment>(target), &deployments).await?);
    deleted.extend(prune_kind(target, typed_api::<PodDisruptionBudget>(target), &budgets).await?);
    deleted.extend(
        prune_kind(
            target,
            typed_api::<HorizontalPodAutoscaler>(target),
            &autoscalers,
        )
        .await?,
    );
    deleted.extend(prune_kind(target, typed_api::<Ingress>(target), &ingresses).await?);
    if target.service_monitors_served {
        let resource = service_monitor_resource();
        let monitor_api = PruneApi {
            api: Api::<DynamicObject>::namespaced_with(
                target.client.clone(),
                target.namespace,
                &resource,
            ),
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
            // The CRD may have gone since discovery: nothing to prune then.
            missing_kind_is_empty: true,
        };
        deleted.extend(prune_kind(target, monitor_api, &monitors).await?);
    }
    Ok(deleted)
}

struct PruneApi<K> {
    api: Api<K>,
    api_version: String,
    kind: String,
    missing_kind_is_empty: bool,
}

fn typed_api<K>(target: &Target<'_>) -> PruneApi<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    PruneApi {
        api: Api::namespaced(target.client.clone(), target.namespace),
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        missing_kind_is_empty: false,
    }
}

async fn prune_kind<K>(
    target: &Target<'_>,
    prune: PruneApi<K>,
    keep: &BTreeSet<String>,
) -> Result<Vec<Deleted>, Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let selector = labels::owned_selector_string(target.instance);
    let listed = match prune
        .api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => list.items,
        Err(error) if prune.missing_kind_is_empty && super::dereference::is_not_served(&error) => {
            Vec::new()
        }
        Err(source) => {
            return Err(Error::List {
                kind: prune.kind,
                source,
            });
        }
    };
    let mut deleted = Vec::new();
    for object in listed {
        let name = object.name_any();
        let controlled = object
            .owner_references()
            .iter()
            .any(|owner| owner.uid == target.owner_uid && owner.controller == Some(true));
        if keep.contains(&name) || !controlled {
            continue;
        }
        match prune.api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                return Err(Error::Delete {
                    kind: prune.kind,
                    name,
                    source,
                });
            }
        }
        deleted.push(Deleted {
            api_version: prune.api_version.clone(),
            kind: prune.kind.clone(),
            name,
        });
    }
    Ok(deleted)
}
