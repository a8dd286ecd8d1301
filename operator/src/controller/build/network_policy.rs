//! The server pods' NetworkPolicy (only with `spec.networkPolicy.enabled`): the client port
//! from `from`, the metrics port from `metricsFrom` (each: any source when empty). Egress is
//! not restricted (the server reaches its database, Redis, a JWKS URL and webhooks).

use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::metadata;
use crate::labels::{self, Component};
use crate::names;
use crate::server_contract;
use crate::validate::ValidatedCollabServer;

pub fn network_policy(server: &ValidatedCollabServer) -> Option<NetworkPolicy> {
    let policy = server.network_policy.as_ref()?;
    let rule = |from: &[NetworkPolicyPeer], port: u16| NetworkPolicyIngressRule {
        from: (!from.is_empty()).then(|| from.to_vec()),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(port))),
            protocol: Some("TCP".to_owned()),
            ..NetworkPolicyPort::default()
        }]),
    };
    Some(NetworkPolicy {
        metadata: metadata(server, names::server(&server.name), Component::Server),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&server.name, Component::Server)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                rule(&policy.clients_from, server.port),
                rule(&policy.metrics_from, server_contract::METRICS_PORT),
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}
