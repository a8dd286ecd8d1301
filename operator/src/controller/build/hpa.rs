//! The `autoscaling/v2` HorizontalPodAutoscaler (only with `spec.autoscaling.enabled`).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::metadata;
use crate::labels::Component;
use crate::names;
use crate::validate::{Scaling, ValidatedCollabServer};

pub fn horizontal_pod_autoscaler(
    server: &ValidatedCollabServer,
) -> Option<HorizontalPodAutoscaler> {
    let Scaling::Autoscaled {
        min_replicas,
        max_replicas,
        target_cpu_utilization_percentage,
    } = server.scaling
    else {
        return None;
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
            metrics: Some(vec![MetricSpec {
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
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}
