//! The server pods' PodDisruptionBudget (`policy/v1`).

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

use super::metadata;
use crate::labels::{self, Component};
use crate::names;
use crate::validate::ValidatedCollabServer;

pub fn pod_disruption_budget(server: &ValidatedCollabServer) -> Option<PodDisruptionBudget> {
    let max_unavailable = server.pod_disruption_budget.clone()?;
    Some(PodDisruptionBudget {
        metadata: metadata(server, names::server(&server.name), Component::Server),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(max_unavailable),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&server.name, Component::Server)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
