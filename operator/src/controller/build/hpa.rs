//! The `autoscaling/v2` HorizontalPodAutoscaler (only with `spec.autoscaling.enabled`): CPU
//! utilization, optionally the average `collab_server_connections` per pod (a Pods metric,
//! served by a custom-metrics adapter such as prometheus-adapter), and a `behavior` fit for
//! WebSockets: scale up promptly, scale down slowly, one pod at a time, after a long
//! stabilization window, because every removed pod drops its sockets and their clients
//! reconnect and reload their documents elsewhere.

use k8s_openapi::{
    api::autoscaling::v2::{
        CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
        HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
        MetricTarget, PodsMetricSource, ResourceMetricSource,
    },
    apimachinery::pkg::api::resource::Quantity,
};

use super::metadata;
use crate::labels::Component;
use crate::names;
use crate::validate::{Scaling, ValidatedCollabServer};

/// The server's gauge of open WebSocket connections.
pub const CONNECTIONS_METRIC: &str = "collab_server_connections";
/// At most one pod removed per this many seconds.
const SCALE_DOWN_PERIOD_SECONDS: i32 = 120;

pub fn horizontal_pod_autoscaler(
    server: &ValidatedCollabServer,
) -> Option<HorizontalPodAutoscaler> {
    let Scaling::Autoscaled {
        min_replicas,
        max_replicas,
        target_cpu_utilization_percentage,
        scale_down_stabilization_window_seconds,
        connections_per_pod,
    } = server.scaling
    else {
        return None;
    };
    let mut metrics = vec![MetricSpec {
        type_: "Resource".to_owned(),
        resource: Some(ResourceMetricSource {
            name: "cpu".to_owned(),
            target: MetricTarget {
                type_: "Utilization".to_owned(),
                average_utilization: Some(target_cpu_utilization_percentage),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }];
    if let Some(connections) = connections_per_pod {
        metrics.push(MetricSpec {
            type_: "Pods".to_owned(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: CONNECTIONS_METRIC.to_owned(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".to_owned(),
                    average_value: Some(Quantity(connections.to_string())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    let policy = |type_: &str, value: i32, period_seconds: i32| HPAScalingPolicy {
        type_: type_.to_owned(),
        value,
        period_seconds,
    };
    Some(HorizontalPodAutoscaler {
        metadata: metadata(server, names::server(&server.name), Component::Server),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: names::server(&server.name),
            },
            min_replicas: Some(min_replicas),
            max_replicas,
            metrics: Some(metrics),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                // Up: at once, doubling or 4 pods per 30 s, whichever is more.
                scale_up: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(0),
                    select_policy: Some("Max".to_owned()),
                    policies: Some(vec![policy("Percent", 100, 30), policy("Pods", 4, 30)]),
                    ..HPAScalingRules::default()
                }),
                // Down: after the window, one pod per 2 minutes.
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(scale_down_stabilization_window_seconds),
                    select_policy: Some("Min".to_owned()),
                    policies: Some(vec![policy("Pods", 1, SCALE_DOWN_PERIOD_SECONDS)]),
                    ..HPAScalingRules::default()
                }),
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::dereferenced::Dereferenced;
    use crate::fixtures;
    use crate::validate::{OperatorDefaults, validate};
    use serde_json::json;

    fn autoscaled(connections_per_pod: Option<i32>) -> HorizontalPodAutoscaler {
        autoscaled_with(json!({ "enabled": true }), connections_per_pod)
    }

    fn autoscaled_with(
        autoscaling: serde_json::Value,
        connections_per_pod: Option<i32>,
    ) -> HorizontalPodAutoscaler {
        let server = fixtures::collab_server(json!({
            "auth": { "allowAnonymous": true },
            "database": { "secretRef": { "name": "db" } },
            "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } } },
            "autoscaling": autoscaling,
        }));
        let dereferenced = Dereferenced::default()
            .with_secret("db", [("DATABASE_URL", "postgres://db/app")])
            .with_secret("redis", [("url", "redis://redis:6379")]);
        let mut validated = validate(&server, &dereferenced, &OperatorDefaults::default()).unwrap();
        if let Scaling::Autoscaled {
            connections_per_pod: ref mut connections,
            ..
        } = validated.scaling
            && connections_per_pod.is_some()
        {
            *connections = connections_per_pod;
        }
        horizontal_pod_autoscaler(&validated).unwrap()
    }

    #[test]
    fn scale_down_is_slow_and_one_pod_at_a_time() {
        let behavior = autoscaled(None).spec.unwrap().behavior.unwrap();
        let down = behavior.scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(600));
        assert_eq!(down.select_policy.as_deref(), Some("Min"));
        let policies = down.policies.unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!((policies[0].type_.as_str(), policies[0].value), ("Pods", 1));
        assert!(policies[0].period_seconds >= 60);
        let up = behavior.scale_up.unwrap();
        assert_eq!(up.stabilization_window_seconds, Some(0));
    }

    #[test]
    fn connections_per_pod_adds_a_pods_metric() {
        let metrics = autoscaled(None).spec.unwrap().metrics.unwrap();
        assert_eq!(metrics.len(), 1, "CPU only by default");
        let metrics = autoscaled(Some(500)).spec.unwrap().metrics.unwrap();
        assert_eq!(metrics.len(), 2);
        let pods = metrics[1].pods.as_ref().unwrap();
        assert_eq!(metrics[1].type_, "Pods");
        assert_eq!(pods.metric.name, CONNECTIONS_METRIC);
        assert_eq!(pods.target.type_, "AverageValue");
        assert_eq!(pods.target.average_value, Some(Quantity("500".to_owned())));
    }

    #[test]
    fn the_spec_sets_the_window_and_the_connections_target() {
        let hpa = autoscaled_with(
            json!({ "enabled": true, "scaleDownStabilizationWindowSeconds": 1200, "connectionsPerPod": 800 }),
            None,
        );
        let spec = hpa.spec.unwrap();
        let down = spec.behavior.unwrap().scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(1200));
        let metrics = spec.metrics.unwrap();
        assert_eq!(
            metrics[1].pods.as_ref().unwrap().target.average_value,
            Some(Quantity("800".to_owned()))
        );
    }
}
