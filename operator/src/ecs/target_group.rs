//! What the server needs of the ALB target group, which the service only refers to: the
//! `ModifyTargetGroupAttributes` input (deregistration delay, stickiness off) and the
//! `ModifyTargetGroup` input (health check on `/health`) for `aws elbv2 ... --cli-input-json`.
//! Member names are the API's (botocore's `elbv2` model, which `tests/deploy/test_ecs.py`
//! validates the output against).

use serde::Serialize;

use crate::server_contract;

pub const ATTRIBUTES_FILE: &str = "target-group-attributes.json";
pub const HEALTH_CHECK_FILE: &str = "target-group-health-check.json";

/// Target group deregistration delay, in seconds: ECS sends SIGTERM only once the target has
/// drained, and WebSocket connections never drain by themselves (the default is 300).
pub const DEREGISTRATION_DELAY_SECONDS: u32 = 30;
pub const DEREGISTRATION_DELAY_KEY: &str = "deregistration_delay.timeout_seconds";
pub const STICKINESS_KEY: &str = "stickiness.enabled";
/// The target group's health check: every 15 s, healthy after 2 answers (30 s), unhealthy
/// after 3 failures.
pub const HEALTH_CHECK_INTERVAL_SECONDS: u32 = 15;
pub const HEALTH_CHECK_TIMEOUT_SECONDS: u32 = 5;
pub const HEALTHY_THRESHOLD: u32 = 2;
pub const UNHEALTHY_THRESHOLD: u32 = 3;
pub const HEALTHY_HTTP_CODES: &str = "200";

/// `aws elbv2 modify-target-group-attributes --cli-input-json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupAttributes {
    pub target_group_arn: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

/// `aws elbv2 modify-target-group --cli-input-json`: the health check only.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupHealthCheck {
    pub target_group_arn: String,
    pub health_check_enabled: bool,
    pub health_check_protocol: String,
    pub health_check_port: String,
    pub health_check_path: String,
    pub health_check_interval_seconds: u32,
    pub health_check_timeout_seconds: u32,
    pub healthy_threshold_count: u32,
    pub unhealthy_threshold_count: u32,
    pub matcher: Matcher,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Matcher {
    pub http_code: String,
}

/// Both inputs for the target group `arn`.
pub fn target_group(arn: &str) -> (TargetGroupAttributes, TargetGroupHealthCheck) {
    let attribute = |key: &str, value: String| Attribute {
        key: key.to_owned(),
        value,
    };
    (
        TargetGroupAttributes {
            target_group_arn: arn.to_owned(),
            attributes: vec![
                attribute(
                    DEREGISTRATION_DELAY_KEY,
                    DEREGISTRATION_DELAY_SECONDS.to_string(),
                ),
                attribute(STICKINESS_KEY, "false".to_owned()),
            ],
        },
        TargetGroupHealthCheck {
            target_group_arn: arn.to_owned(),
            health_check_enabled: true,
            health_check_protocol: "HTTP".to_owned(),
            health_check_port: "traffic-port".to_owned(),
            health_check_path: server_contract::HEALTH_PATH.to_owned(),
            health_check_interval_seconds: HEALTH_CHECK_INTERVAL_SECONDS,
            health_check_timeout_seconds: HEALTH_CHECK_TIMEOUT_SECONDS,
            healthy_threshold_count: HEALTHY_THRESHOLD,
            unhealthy_threshold_count: UNHEALTHY_THRESHOLD,
            matcher: Matcher {
                http_code: HEALTHY_HTTP_CODES.to_owned(),
            },
        },
    )
}
