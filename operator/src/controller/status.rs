//! Step 5 of the reconcile: the CollabServer's status, computed from what was applied (or
//! from the error that stopped the pipeline), then written with server-side apply.
//!
//! Conditions: `Available` (server pods serve clients), `Progressing` (a rollout is under way)
//! and `Degraded` (the workloads run below what the spec asks) describe the workloads, read
//! from the server Deployment and the managed Redis, also after a failed reconcile.
//! `Reconciled` says whether the last reconcile applied the current spec (False: the error's
//! kind as reason). `lastTransitionTime` changes only when a condition's status does.

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
use crate::names;
use crate::validate::{Note, ValidatedCollabServer};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const RECONCILED: &str = "Reconciled";

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

/// What the workloads reported: the server Deployment and, with a managed Redis, its
/// Deployment, as the API server returned them (`None`: not found, or not read).
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    pub server: Option<Deployment>,
    /// `Some(None)`: a managed Redis is expected but its Deployment was not found.
    pub redis: Option<Option<Deployment>>,
}

/// Status after a successful apply, from the workloads the API server returned.
/// `prepared_hash` is [`Resources::hash`] of what was built (not of what the API server
/// returned, which changes with every resourceVersion).
pub fn applied(
    previous: &Previous<'_>,
    server: &ValidatedCollabServer,
    applied: &Resources<Applied>,
    prepared_hash: &str,
    warnings: &[String],
) -> CollabServerStatus {
    let workloads = Workloads {
        server: Some(applied.deployment.clone()),
        redis: applied
            .redis
            .as_ref()
            .map(|redis| Some(redis.deployment.clone())),
    };
    // What the API server refused first, then what validation decided.
    let mut notes: Vec<(&'static str, String)> = warnings
        .iter()
        .map(|warning| ("VolumeUnchanged", warning.clone()))
        .collect();
    notes.extend(server.notes.iter().map(|note| note_text(note, server)));
    let mut status = from_workloads(previous, &server.name, &workloads, &notes);
    status.selector = Some(labels::selector_string(&server.name, Component::Server));
    status.endpoint = Some(server.endpoint());
    status.applied_hash = Some(prepared_hash.to_owned());
    // What was skipped or kept is said here too: `Degraded` shows only the first note, and only
    // while nothing worse is the matter with the pods.
    let message = if notes.is_empty() {
        "every object of the current spec is applied".to_owned()
    } else {
        let skipped: Vec<String> = notes
            .iter()
            .map(|(reason, message)| format!("{reason}: {message}"))
            .collect();
        format!(
            "every other object of the current spec is applied; {}",
            skipped.join("; ")
        )
    };
    status
        .conditions
        .push(previous.condition(RECONCILED, true, "ReconcileSucceeded", message));
    status
}

/// Status after the pipeline stopped with an error: `Available`, `Progressing` and
/// `Degraded` still describe the workloads as they are (read after the failure; `None` when
/// they could not be read, and the previous conditions are kept), `Reconciled` is False with
/// the error's kind as reason. Counts and endpoint of the last success are kept.
pub fn failed(
    previous: &Previous<'_>,
    name: &str,
    workloads: Option<&Workloads>,
    reason: &str,
    message: &str,
) -> CollabServerStatus {
    let mut status = previous.status.cloned().unwrap_or_default();
    status.observed_generation = previous.generation;
    let workload_conditions = match workloads {
        Some(workloads) => {
            let observed = from_workloads(previous, name, workloads, &[]);
            status.replicas = observed.replicas;
            status.ready_replicas = observed.ready_replicas;
            observed.conditions
        }
        None => [AVAILABLE, PROGRESSING, DEGRADED]
            .into_iter()
            .map(|type_| {
                previous
                    .status
                    .and_then(|status| status.conditions.iter().find(|c| c.type_ == type_))
                    .cloned()
                    .unwrap_or_else(|| {
                        previous.condition_with(
                            type_,
                            "Unknown",
                            "WorkloadsUnknown",
                            "the workloads could not be read".to_owned(),
                        )
                    })
            })
            .collect(),
    };
    status.conditions = workload_conditions;
    status.conditions.push(previous.condition(
        RECONCILED,
        false,
        reason,
        format!("the current spec is not (fully) applied; pods of an earlier spec, if any, keep running: {message}"),
    ));
    status
}

/// `Available`, `Progressing` and `Degraded` (with counts) from the workloads alone, plus the
/// notes the spec's validation made (they make `Degraded` True when nothing worse does).
fn from_workloads(
    previous: &Previous<'_>,
    name: &str,
    workloads: &Workloads,
    notes: &[(&'static str, String)],
) -> CollabServerStatus {
    let deployment = names::server(name);
    let Some(server) = &workloads.server else {
        let message =
            || format!("Deployment {deployment} does not exist yet: see the Reconciled condition");
        return CollabServerStatus {
            observed_generation: previous.generation,
            conditions: vec![
                previous.condition(AVAILABLE, false, "NotDeployed", message()),
                previous.condition(PROGRESSING, false, "NotDeployed", message()),
                previous.condition(DEGRADED, true, "NotDeployed", message()),
            ],
            ..CollabServerStatus::default()
        };
    };
    let counts = DeploymentCounts::of(server);

    let available = if counts.desired == 0 {
        previous.condition(
            AVAILABLE,
            false,
            "ScaledToZero",
            "the server is scaled to 0 replicas: no server pod runs".to_owned(),
        )
    } else if counts.available > 0 {
        previous.condition(
            AVAILABLE,
            true,
            "ReplicasAvailable",
            format!(
                "{} of {} replicas available",
                counts.available, counts.desired
            ),
        )
    } else {
        previous.condition(
            AVAILABLE,
            false,
            "NoReplicasAvailable",
            format!(
                "0 of {} replicas available: see `kubectl describe deployment {deployment}` and its pods' events",
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
                "{} of {} replicas updated, {} available",
                counts.updated, counts.desired, counts.available
            ),
        )
    } else {
        previous.condition(
            PROGRESSING,
            false,
            "RolloutComplete",
            format!("all {} replicas run the current template", counts.desired),
        )
    };

    let redis = workloads
        .redis
        .as_ref()
        .map(|redis| redis.as_ref().map(DeploymentCounts::of).unwrap_or_default());
    let redis_name = names::redis(name);
    let degraded = if counts.deadline_exceeded {
        previous.condition(
            DEGRADED,
            true,
            "RolloutStuck",
            format!(
                "new pods of Deployment {deployment} do not become available: see `kubectl describe deployment {deployment}`"
            ),
        )
    } else if !counts.rolling_out() && counts.available < counts.desired {
        previous.condition(
            DEGRADED,
            true,
            "ReplicasUnavailable",
            format!(
                "{} of {} replicas available: see `kubectl get pods -l {}`",
                counts.available,
                counts.desired,
                labels::selector_string(name, Component::Server)
            ),
        )
    } else if redis.is_some_and(|redis| redis.available == 0) {
        previous.condition(
            DEGRADED,
            true,
            "RedisUnavailable",
            format!(
                "the managed Redis (Deployment {redis_name}) has no available pod: replicas do not see each other's edits until it has"
            ),
        )
    } else if let Some((reason, message)) = notes.first() {
        previous.condition(DEGRADED, true, reason, message.clone())
    } else {
        previous.condition(
            DEGRADED,
            false,
            "AsExpected",
            "the workloads run as the spec asks".to_owned(),
        )
    };

    CollabServerStatus {
        observed_generation: previous.generation,
        replicas: counts.replicas,
        ready_replicas: counts.ready,
        conditions: vec![available, progressing, degraded],
        ..CollabServerStatus::default()
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

/// Status while `spec.paused` is true: the operator looked at nothing, so it claims nothing.
pub fn paused(previous: &Previous<'_>) -> CollabServerStatus {
    let mut status = previous.status.cloned().unwrap_or_default();
    status.observed_generation = previous.generation;
    let message = || "spec.paused is true: the operator changes nothing".to_owned();
    status.conditions = vec![
        previous.condition_with(AVAILABLE, "Unknown", "Paused", message()),
        previous.condition(PROGRESSING, false, "Paused", message()),
        previous.condition_with(DEGRADED, "Unknown", "Paused", message()),
        previous.condition_with(RECONCILED, "Unknown", "Paused", message()),
    ];
    status
}

/// Reads the workloads after a failed reconcile, so the status still describes them. An error
/// (the API server unreachable, or a permission missing) is returned for the caller to log and
/// report, never swallowed.
pub async fn observe(
    client: &Client,
    namespace: &str,
    name: &str,
    managed_redis: bool,
) -> Result<Workloads, kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let server = api.get_opt(&names::server(name)).await?;
    let redis = if managed_redis {
        Some(api.get_opt(&names::redis(name)).await?)
    } else {
        None
    };
    Ok(Workloads { server, redis })
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
    /// The Deployment's own `Progressing` condition says `NewReplicaSetAvailable`.
    complete: bool,
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
        let complete = status.conditions.iter().flatten().any(|condition| {
            condition.type_ == "Progressing"
                && condition.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
        Self {
            complete,
            desired,
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            observed,
            deadline_exceeded,
        }
    }

    /// A rollout is under way (`kubectl rollout status`'s rule): the controller has not seen
    /// the current template, not every replica is updated, old pods remain, or updated pods
    /// are not available yet while the Deployment still reports the new ReplicaSet in
    /// progress. Unavailable pods after a completed rollout are not a rollout: `Degraded`.
    fn rolling_out(&self) -> bool {
        !self.observed
            || self.updated < self.desired
            || self.replicas > self.updated
            || (self.available < self.updated && !self.complete)
    }
}

/// The object's name and namespace, for callers that only have its metadata.
pub fn name_and_namespace<K: ResourceExt>(object: &K) -> (String, String) {
    (
        object.name_any(),
        object.namespace().unwrap_or_else(|| "default".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::fixtures::fixed_time;
    use serde_json::Value;

    fn previous() -> Previous<'static> {
        Previous {
            status: None,
            generation: Some(4),
            now: fixed_time(),
        }
    }

    /// A Deployment with `desired` replicas and the given status fields.
    fn deployment(desired: i32, status: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "docs", "generation": 2 },
            "spec": { "replicas": desired, "selector": {}, "template": {} },
            "status": status,
        }))
        .unwrap()
    }

    fn conditions(
        workloads: &Workloads,
        notes: &[(&'static str, String)],
    ) -> Vec<(String, String)> {
        from_workloads(&previous(), "docs", workloads, notes)
            .conditions
            .into_iter()
            .map(|condition| (condition.status, condition.reason))
            .collect()
    }

    fn server(desired: i32, status: Value) -> Workloads {
        Workloads {
            server: Some(deployment(desired, status)),
            redis: None,
        }
    }

    fn expect(pairs: [(&str, &str); 3]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(status, reason)| ((*status).to_owned(), (*reason).to_owned()))
            .collect()
    }

    const COMPLETE: &str = "NewReplicaSetAvailable";

    fn progressing(reason: &str) -> Value {
        json!([{ "type": "Progressing", "status": "True", "reason": reason }])
    }

    #[test]
    fn healthy_rollout_complete() {
        let status = json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": progressing(COMPLETE) });
        assert_eq!(
            conditions(&server(2, status), &[]),
            expect([
                ("True", "ReplicasAvailable"),
                ("False", "RolloutComplete"),
                ("False", "AsExpected")
            ])
        );
    }

    #[test]
    fn scaled_to_zero_is_not_available_and_not_degraded() {
        let status = json!({ "observedGeneration": 2 });
        assert_eq!(
            conditions(&server(0, status), &[]),
            expect([
                ("False", "ScaledToZero"),
                ("False", "RolloutComplete"),
                ("False", "AsExpected")
            ])
        );
    }

    #[test]
    fn a_rollout_in_progress_is_progressing_not_degraded() {
        // maxSurge 1: a third pod of the new template is starting beside two old ones.
        let status = json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": progressing("ReplicaSetUpdated") });
        assert_eq!(
            conditions(&server(2, status), &[]),
            expect([
                ("True", "ReplicasAvailable"),
                ("True", "RollingOut"),
                ("False", "AsExpected")
            ])
        );
        // Recreate (SQLite): the new pod exists but is not ready yet; nothing is available.
        let status = json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
            "conditions": progressing("ReplicaSetUpdated") });
        assert_eq!(
            conditions(&server(1, status), &[]),
            expect([
                ("False", "NoReplicasAvailable"),
                ("True", "RollingOut"),
                ("False", "AsExpected")
            ])
        );
        // The Deployment controller has not seen the new template yet.
        let status = json!({ "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": progressing(COMPLETE) });
        assert_eq!(conditions(&server(2, status), &[])[1].1, "RollingOut");
    }

    #[test]
    fn a_stuck_rollout_is_degraded() {
        let status = json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": [
                { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }
            ] });
        assert_eq!(
            conditions(&server(2, status), &[]),
            expect([
                ("True", "ReplicasAvailable"),
                ("False", "RolloutStuck"),
                ("True", "RolloutStuck")
            ])
        );
    }

    #[test]
    fn pods_lost_after_a_complete_rollout_are_degraded_not_progressing() {
        let status = json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 1, "availableReplicas": 1, "conditions": progressing(COMPLETE) });
        assert_eq!(
            conditions(&server(3, status), &[]),
            expect([
                ("True", "ReplicasAvailable"),
                ("False", "RolloutComplete"),
                ("True", "ReplicasUnavailable")
            ])
        );
        let status = json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
            "conditions": progressing(COMPLETE) });
        assert_eq!(
            conditions(&server(1, status), &[]),
            expect([
                ("False", "NoReplicasAvailable"),
                ("False", "RolloutComplete"),
                ("True", "ReplicasUnavailable")
            ])
        );
    }

    #[test]
    fn missing_redis_and_notes_degrade_a_healthy_server() {
        let healthy = json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": progressing(COMPLETE) });
        let mut workloads = server(2, healthy);
        workloads.redis = Some(None);
        assert_eq!(
            conditions(&workloads, &[])[2],
            ("True".to_owned(), "RedisUnavailable".to_owned())
        );
        workloads.redis = None;
        let notes = [("ReplicasLimitedToOne", "one replica".to_owned())];
        assert_eq!(
            conditions(&workloads, &notes)[2],
            ("True".to_owned(), "ReplicasLimitedToOne".to_owned())
        );
    }

    #[test]
    fn nothing_deployed_yet() {
        assert_eq!(
            conditions(&Workloads::default(), &[]),
            expect([
                ("False", "NotDeployed"),
                ("False", "NotDeployed"),
                ("True", "NotDeployed")
            ])
        );
    }

    #[test]
    fn a_failure_without_workloads_keeps_earlier_conditions_or_says_unknown() {
        let failed_status = failed(&previous(), "docs", None, "ApplyFailed", "boom");
        let pairs: Vec<(String, String, String)> = failed_status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Available", "Unknown", "WorkloadsUnknown"),
                ("Progressing", "Unknown", "WorkloadsUnknown"),
                ("Degraded", "Unknown", "WorkloadsUnknown"),
                ("Reconciled", "False", "ApplyFailed"),
            ]
            .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        );
        assert!(failed_status.conditions[3].message.ends_with("boom"));
    }
}
