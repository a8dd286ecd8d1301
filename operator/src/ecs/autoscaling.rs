//! Application Auto Scaling of an autoscaled CollabServer's service: the
//! `RegisterScalableTarget` input and one `PutScalingPolicy` input per target tracking policy
//! (`aws application-autoscaling ... --cli-input-json`), as Copilot sets them up for a
//! load-balanced web service: CPU, and optionally ALB requests per target. Member names are the
//! API's (botocore's `application-autoscaling` model, which `tests/deploy/test_ecs.py`
//! validates the output against).

use serde::Serialize;

use super::options::EcsOptions;

pub const SERVICE_NAMESPACE: &str = "ecs";
pub const SCALABLE_DIMENSION: &str = "ecs:service:DesiredCount";
pub const CPU_METRIC: &str = "ECSServiceAverageCPUUtilization";
pub const REQUEST_COUNT_METRIC: &str = "ALBRequestCountPerTarget";

pub const SCALABLE_TARGET_FILE: &str = "scalable-target.json";
pub const CPU_POLICY_FILE: &str = "scaling-policy-cpu.json";
pub const REQUESTS_POLICY_FILE: &str = "scaling-policy-requests.json";

/// `aws application-autoscaling register-scalable-target --cli-input-json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ScalableTarget {
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub min_capacity: i32,
    pub max_capacity: i32,
}

/// `aws application-autoscaling put-scaling-policy --cli-input-json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingPolicy {
    pub policy_name: String,
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub policy_type: PolicyType,
    pub target_tracking_scaling_policy_configuration: TargetTracking,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum PolicyType {
    TargetTrackingScaling,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TargetTracking {
    /// A whole number here (the API takes a double).
    pub target_value: u32,
    pub predefined_metric_specification: PredefinedMetric,
    pub scale_in_cooldown: u32,
    pub scale_out_cooldown: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PredefinedMetric {
    pub predefined_metric_type: String,
    /// `app/ALB/ID/targetgroup/TG/ID`, for the request count only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_label: Option<String>,
}

/// The target and its policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autoscaling {
    pub target: ScalableTarget,
    pub cpu: ScalingPolicy,
    /// With `autoscaling.requestsPerTarget` (and the ALB's ARN) in `ecs.yaml`.
    pub requests: Option<ScalingPolicy>,
}

/// `cluster/NAME` of a cluster name or ARN: its name.
pub fn cluster_name(cluster: &str) -> &str {
    cluster
        .rsplit_once("cluster/")
        .map_or(cluster, |(_, name)| name)
}

/// The service's resource id: `service/CLUSTER/SERVICE`.
pub fn resource_id(options: &EcsOptions) -> String {
    format!(
        "service/{}/{}",
        cluster_name(&options.cluster),
        options.service
    )
}

/// The target and policies of a service that scales between `min` and `max` tasks at
/// `target_cpu` percent CPU.
pub fn autoscaling(options: &EcsOptions, min: i32, max: i32, target_cpu: i32) -> Autoscaling {
    let resource_id = resource_id(options);
    let policy = |suffix: &str, target_value: u32, metric: PredefinedMetric| ScalingPolicy {
        policy_name: format!("{}-{suffix}", options.service),
        service_namespace: SERVICE_NAMESPACE.to_owned(),
        resource_id: resource_id.clone(),
        scalable_dimension: SCALABLE_DIMENSION.to_owned(),
        policy_type: PolicyType::TargetTrackingScaling,
        target_tracking_scaling_policy_configuration: TargetTracking {
            target_value,
            predefined_metric_specification: metric,
            scale_in_cooldown: options.autoscaling.scale_in_cooldown_seconds(),
            scale_out_cooldown: options.autoscaling.scale_out_cooldown_seconds(),
        },
    };
    let cpu = policy(
        "cpu",
        u32::try_from(target_cpu).unwrap_or(0),
        PredefinedMetric {
            predefined_metric_type: CPU_METRIC.to_owned(),
            resource_label: None,
        },
    );
    let requests = options
        .autoscaling
        .requests_per_target
        .zip(options.load_balancer_label())
        .map(|(requests, load_balancer)| {
            let target_group = options
                .load_balancer
                .target_group_arn
                .split_once(":targetgroup/")
                .map_or("", |(_, rest)| rest);
            policy(
                "requests",
                requests,
                PredefinedMetric {
                    predefined_metric_type: REQUEST_COUNT_METRIC.to_owned(),
                    resource_label: Some(format!("{load_balancer}/targetgroup/{target_group}")),
                },
            )
        });
    Autoscaling {
        target: ScalableTarget {
            service_namespace: SERVICE_NAMESPACE.to_owned(),
            resource_id,
            scalable_dimension: SCALABLE_DIMENSION.to_owned(),
            min_capacity: min,
            max_capacity: max,
        },
        cpu,
        requests,
    }
}
