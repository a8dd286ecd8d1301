//! Step 5 of the reconcile: the CollabServer's status, computed from what was applied (or
//! from the error that stopped the pipeline), then written with server-side apply.
//!
//! Conditions: `Available` (server pods serve clients), `Progressing` (a rollout is under way)
//! and `Degraded` (the spec is not, or not fully, what runs). `lastTransitionTime` changes only
//! when a condition's status does.

use k8s_openapi::{
    api::apps::v1::Deployment,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::DeserializeGuard,
};
use serde_json::json;

use super::apply::FIELD_MANAGER;
use super::build::{Applied, Resources};
use crate::crd::{CollabServer, CollabServerStatus};
use crate::labels::{self, Component};
use crate::validate::{Note, ValidatedCollabServer};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to update the status of CollabServer {namespace}/{name}: {source}")]
    PatchStatus {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::PatchStatus { .. } => "PatchStatusFailed",
        }
    }
}

/// What the previous status said, so unchanged conditions keep their transition time.
pub struct Previous<'a> {
    pub status: Option<&'a CollabServerStatus>,
    pub generation: Option<i64>,
    pub now: Time,
}

impl Previous<'_> {
    fn condition(&self, type_: &str, status: bool, reason: &str, message: String) -> Condition {
        self.condition_with(
            type_,
            if status { "True" } else { "False" },
            reason,
            message,
        )
    }

    fn condition_with(
        &self,
        type_: &str,
        status: &str,
        reason: &str,
        message: String,
    ) -> Condition {
        let last_transition_time = self
            .status
            .and_then(|previous| previous.conditions.iter().find(|c| c.type_ == type_))
            .filter(|previous| previous.status == status)
            .map(|previous| previous.last_transition_time.clone())
            .unwrap_or_else(|| self.now.clone());
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: self.generation,
        }
    }
}

/// Status after a successful apply: read from the Deployment the API server returned.
/// `prepared_hash` is [`Resources::hash`] of what was built (not of what the API server
/// returned, which changes with every resourceVersion).
pub fn applied(
    previous: &Previous<'_>,
    server: &ValidatedCollabServer,
    applied: &Resources<Applied>,
    prepared_hash: &str,
) -> CollabServerStatus {
    let counts = DeploymentCounts::of(&applied.deployment);
    let endpoint = server.endpoint();
    let deployment = &server.name;

    let available = if counts.desired == 0 {
        previous.condition(
            AVAILABLE,
            false,
            "ScaledToZero",
            "spec.replicas is 0: no server pod runs".to_owned(),
        )
    } else if counts.available > 0 {
        previous.condition(
            AVAILABLE,
            true,
            "ReplicasAvailable",
            format!(
                "{} of {} replicas ready; clients connect to {endpoint}",
                counts.ready, counts.desired
            ),
        )
    } else {
        previous.condition(
            AVAILABLE,
            false,
            "NoReplicasAvailable",
            format!(
                "0 of {} replicas ready: see `kubectl describe deployment {deployment}` and its pods' events",
                counts.desired
            ),
        )
    };

    let progressing = if counts.deadline_exceeded {
        previous.condition(
            PROGRESSING,
            false,
            "RolloutStuck",
            format!("Deployment {deployment} exceeded its progress deadline"),
        )
    } else if counts.rolling_out() {
        previous.condition(
            PROGRESSING,
            true,
            "RollingOut",
            format!(
                "{} of {} replicas updated, {} ready",
                counts.updated, counts.desired, counts.ready
            ),
        )
    } else {
        previous.condition(
            PROGRESSING,
            false,
            "RolloutComplete",
            format!("all {} replicas run the current spec", counts.desired),
        )
    };

    let degraded = if counts.deadline_exceeded {
        previous.condition(
            DEGRADED,
            true,
            "RolloutStuck",
            format!(
                "new pods of Deployment {deployment} do not become ready: see `kubectl describe deployment {deployment}`"
            ),
        )
    } else if let Some(note) = server.notes.first() {
        let (reason, message) = note_text(note, server);
        previous.condition(DEGRADED, true, reason, message)
    } else {
        previous.condition(
            DEGRADED,
            false,
            "AsExpected",
            "the spec is applied as written".to_owned(),
        )
    };

    CollabServerStatus {
        observed_generation: previous.generation,
        replicas: counts.replicas,
        ready_replicas: counts.ready,
        selector: Some(labels::selector_string(&server.name, Component::Server)),
        endpoint: Some(endpoint),
        applied_hash: Some(prepared_hash.to_owned()),
        conditions: vec![available, progressing, degraded],
    }
}

fn note_text(note: &Note, server: &ValidatedCollabServer) -> (&'static str, String) {
    match note {
        Note::ReplicasLimitedToOne { requested } => (
            "ReplicasLimitedToOne",
            format!(
                "running 1 replica instead of {requested}: without spec.database the server keeps documents in SQLite on PersistentVolumeClaim {}-data, which one pod can use; set spec.database (and spec.redis) to scale out",
                server.name
            ),
        ),
        Note::ServiceMonitorCrdMissing => (
            "ServiceMonitorUnavailable",
            "spec.monitoring.serviceMonitor is enabled but the cluster does not serve monitoring.coreos.com/v1 ServiceMonitor: install the Prometheus Operator CRDs, or scrape the <name>-metrics Service another way".to_owned(),
        ),
    }
}

/// Status after the pipeline stopped with an error: nothing of the current spec is presented
/// as available; counts and endpoint from the last success are kept.
pub fn failed(previous: &Previous<'_>, reason: &str, message: &str) -> CollabServerStatus {
    let mut status = previous.status.cloned().unwrap_or_default();
    status.observed_generation = previous.generation;
    status.conditions = vec![
        previous.condition(
            AVAILABLE,
            false,
            reason,
            format!(
                "the current spec is not deployed (pods of an earlier spec, if any, keep running): {message}"
            ),
        ),
        previous.condition(
            PROGRESSING,
            false,
            reason,
            "waiting for the spec or the Secrets it refers to to change".to_owned(),
        ),
        previous.condition(DEGRADED, true, reason, message.to_owned()),
    ];
    status
}

/// Status while `spec.paused` is true: the operator looked at nothing, so it claims nothing.
pub fn paused(previous: &Previous<'_>) -> CollabServerStatus {
    let mut status = previous.status.cloned().unwrap_or_default();
    status.observed_generation = previous.generation;
    let message = || "spec.paused is true: the operator changes nothing".to_owned();
    status.conditions = vec![
        previous.condition_with(AVAILABLE, "Unknown", "Paused", message()),
        previous.condition(PROGRESSING, false, "Paused", message()),
        previous.condition_with(DEGRADED, "Unknown", "Paused", message()),
    ];
    status
}

/// Writes the status (server-side apply, the operator's field manager).
pub async fn patch(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &CollabServerStatus,
) -> Result<(), Error> {
    let api: Api<DeserializeGuard<CollabServer>> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "apiVersion": CollabServer::api_version(&()),
        "kind": CollabServer::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::PatchStatus {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// Replica counts of a Deployment as the API server returned it.
#[derive(Debug, Default, PartialEq, Eq)]
struct DeploymentCounts {
    desired: i32,
    replicas: i32,
    updated: i32,
    ready: i32,
    available: i32,
    /// The Deployment controller has seen the current generation.
    observed: bool,
    deadline_exceeded: bool,
}

impl DeploymentCounts {
    fn of(deployment: &Deployment) -> Self {
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.replicas)
            .unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let observed = match (deployment.metadata.generation, status.observed_generation) {
            (Some(generation), Some(observed)) => observed >= generation,
            (None, _) => true,
            (Some(_), None) => false,
        };
        let deadline_exceeded = status.conditions.iter().flatten().any(|condition| {
            condition.type_ == "Progressing"
                && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        Self {
            desired,
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            observed,
            deadline_exceeded,
        }
    }

    fn rolling_out(&self) -> bool {
        !self.observed
            || self.updated < self.desired
            || self.ready < self.desired
            || self.replicas > self.desired
    }
}

/// The object's name and namespace, for callers that only have its metadata.
pub fn name_and_namespace<K: ResourceExt>(object: &K) -> (String, String) {
    (
        object.name_any(),
        object.namespace().unwrap_or_else(|| "default".to_owned()),
    )
}
