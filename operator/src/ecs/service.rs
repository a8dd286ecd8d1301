//! The `CreateService` input (`aws ecs create-service --cli-input-json`) and the matching
//! `UpdateService` input for a service that already exists. Member names and enum values are
//! the ECS API's.

use serde::{Deserialize, Serialize};

use super::task_definition::Compatibility;

/// A new service.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateService {
    pub cluster: String,
    pub service_name: String,
    /// The task definition family: its newest ACTIVE revision.
    pub task_definition: String,
    pub desired_count: i32,
    pub launch_type: Compatibility,
    pub scheduling_strategy: SchedulingStrategy,
    pub deployment_controller: DeploymentController,
    #[serde(flatten)]
    pub settings: ServiceSettings,
}

/// An existing service: the same settings; `desiredCount` only when the CollabServer fixes the
/// replicas (otherwise Application Auto Scaling owns it).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateService {
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<i32>,
    #[serde(flatten)]
    pub settings: ServiceSettings,
}

/// What create and update share.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    pub platform_version: String,
    pub network_configuration: NetworkConfiguration,
    pub load_balancers: Vec<LoadBalancer>,
    pub health_check_grace_period_seconds: i32,
    pub deployment_configuration: DeploymentConfiguration,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchedulingStrategy {
    Replica,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeploymentController {
    #[serde(rename = "type")]
    pub type_: DeploymentControllerType,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeploymentControllerType {
    /// Rolling updates by ECS itself (what the circuit breaker watches).
    Ecs,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    pub awsvpc_configuration: AwsVpcConfiguration,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AwsVpcConfiguration {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: AssignPublicIp,
}

/// Also the `network.assignPublicIp` of `ecs.yaml` (default `DISABLED`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum AssignPublicIp {
    Enabled,
    #[default]
    Disabled,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    pub deployment_circuit_breaker: DeploymentCircuitBreaker,
    pub maximum_percent: u32,
    pub minimum_healthy_percent: u32,
}

/// Stops a deployment whose tasks keep failing, and with `rollback` returns to the last
/// deployment that completed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}
