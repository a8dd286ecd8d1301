//! Step 3 of the reconcile: pure. [`ValidatedCollabServer`] → [`Resources<Prepared>`], every
//! object a CollabServer should have, with labels from [`crate::labels`], names from
//! [`crate::names`] and the controller owner reference. One module per object kind.

mod deployment;
mod hpa;
mod ingress;
mod network_policy;
mod pdb;
mod redis;
mod service;
mod service_account;
mod service_monitor;
mod volume;

use std::marker::PhantomData;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::api::DynamicObject;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::labels::{self, Component};
use crate::validate::{ValidatedCollabServer, hex};

pub use service_monitor::service_monitor_resource;

/// Built, not yet sent to the API server.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared;

/// As the API server returned them from server-side apply (with their status).
#[derive(Clone, Debug, PartialEq)]
pub struct Applied;

/// Everything one CollabServer consists of. `apply` destructures it without `..`, so a new
/// field cannot be forgotten there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resources<State> {
    pub service_account: ServiceAccount,
    /// The embedded SQLite database's volume (no `spec.database`). Never pruned (adding a
    /// database later must not delete documents): it goes with the CollabServer.
    pub data_volume: Option<PersistentVolumeClaim>,
    pub redis: Option<RedisResources>,
    /// Client-facing Service (WebSocket port).
    pub service: Service,
    /// ClusterIP Service with the metrics port.
    pub metrics_service: Service,
    /// The server Deployment, without `spec.replicas` (see [`Resources::replicas`]).
    pub deployment: Deployment,
    /// Replicas to set on the Deployment; `None` while an autoscaler owns them.
    pub replicas: Option<i32>,
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
    pub service_monitor: Option<DynamicObject>,
    /// The server pods' NetworkPolicy (`spec.networkPolicy`).
    pub network_policy: Option<NetworkPolicy>,
    /// The Ingress to the client Service (`spec.ingress`).
    pub ingress: Option<Ingress>,
    #[serde(skip)]
    pub state: PhantomData<State>,
}

/// The managed Redis.
#[derive(Clone, PartialEq, Serialize)]
pub struct RedisResources {
    /// Password, URL and `redis.conf`: left out of `Debug` output.
    pub secret: Secret,
    /// Its own ServiceAccount (no API access, no token).
    pub service_account: ServiceAccount,
    /// Admits only this CollabServer's server pods, on the Redis port.
    pub network_policy: NetworkPolicy,
    pub service: Service,
    pub deployment: Deployment,
}

impl std::fmt::Debug for RedisResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisResources")
            .field("secret", &self.secret.metadata.name)
            .field("service_account", &self.service_account)
            .field("network_policy", &self.network_policy)
            .field("service", &self.service)
            .field("deployment", &self.deployment)
            .finish()
    }
}

impl<State> Resources<State> {
    /// Hash of every object (recorded in `status.appliedHash`; a change means the operator
    /// changed a child, which is worth an Event).
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex(&Sha256::digest(json))
    }
}

impl Resources<Prepared> {
    /// Every object in apply order as the cluster ends up with it (the Deployment with its
    /// replicas), for golden files and renderers.
    pub fn to_objects(&self) -> Vec<serde_json::Value> {
        let mut deployment = self.deployment.clone();
        if let (Some(spec), Some(replicas)) = (deployment.spec.as_mut(), self.replicas) {
            spec.replicas = Some(replicas);
        }
        let mut objects = vec![json(&self.service_account)];
        objects.extend(self.data_volume.as_ref().map(json));
        if let Some(redis) = &self.redis {
            objects.extend([
                json(&redis.secret),
                json(&redis.service_account),
                json(&redis.network_policy),
                json(&redis.service),
                json(&redis.deployment),
            ]);
        }
        objects.extend([
            json(&self.service),
            json(&self.metrics_service),
            json(&deployment),
        ]);
        objects.extend(self.pod_disruption_budget.as_ref().map(json));
        objects.extend(self.horizontal_pod_autoscaler.as_ref().map(json));
        objects.extend(self.service_monitor.as_ref().map(json));
        objects.extend(self.network_policy.as_ref().map(json));
        objects.extend(self.ingress.as_ref().map(json));
        objects
    }
}

fn json<T: Serialize>(object: &T) -> serde_json::Value {
    serde_json::to_value(object).unwrap_or_default()
}

/// Builds every object for a validated CollabServer.
pub fn build(server: &ValidatedCollabServer) -> Resources<Prepared> {
    Resources {
        service_account: service_account::service_account(server),
        data_volume: volume::data_volume(server),
        redis: redis::redis(server),
        service: service::client_service(server),
        metrics_service: service::metrics_service(server),
        deployment: deployment::deployment(server),
        replicas: deployment::replicas(server),
        pod_disruption_budget: pdb::pod_disruption_budget(server),
        horizontal_pod_autoscaler: hpa::horizontal_pod_autoscaler(server),
        service_monitor: service_monitor::service_monitor(server),
        network_policy: network_policy::network_policy(server),
        ingress: ingress::ingress(server),
        state: PhantomData,
    }
}

/// Metadata of a child: name, namespace, labels and the controller owner reference.
fn metadata(server: &ValidatedCollabServer, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(server.namespace.clone()),
        labels: Some(labels::labels(&server.name, component)),
        owner_references: server.owner.clone().map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}
