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
    /// `FARGATE`, unless the settings carry a capacity provider strategy (the two exclude
    /// each other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<Compatibility>,
    pub scheduling_strategy: SchedulingStrategy,
    pub deployment_controller: DeploymentController,
    #[serde(flatten)]
    pub settings: ServiceSettings,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub enable_execute_command: bool,
    pub propagate_tags: PropagateTags,
    /// ECS tags each task with its cluster and service.
    #[serde(rename = "enableECSManagedTags")]
    pub enable_ecs_managed_tags: bool,
    pub availability_zone_rebalancing: AvailabilityZoneRebalancing,
}

/// One capacity provider and its share of the tasks.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderStrategyItem {
    pub capacity_provider: CapacityProvider,
    pub weight: u32,
    pub base: u32,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum CapacityProvider {
    #[serde(rename = "FARGATE")]
    Fargate,
    #[serde(rename = "FARGATE_SPOT")]
    FargateSpot,
}

impl CapacityProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityProvider::Fargate => "FARGATE",
            CapacityProvider::FargateSpot => "FARGATE_SPOT",
        }
    }
}

/// Also the `propagateTags` of `ecs.yaml` (default `SERVICE`, as Copilot sets it).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropagateTags {
    #[default]
    Service,
    TaskDefinition,
    None,
}

impl PropagateTags {
    pub fn as_str(self) -> &'static str {
        match self {
            PropagateTags::Service => "SERVICE",
            PropagateTags::TaskDefinition => "TASK_DEFINITION",
            PropagateTags::None => "NONE",
        }
    }
}

/// Also the `availabilityZoneRebalancing` of `ecs.yaml` (default `ENABLED`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum AvailabilityZoneRebalancing {
    #[default]
    Enabled,
    Disabled,
}

impl AvailabilityZoneRebalancing {
    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilityZoneRebalancing::Enabled => "ENABLED",
            AvailabilityZoneRebalancing::Disabled => "DISABLED",
        }
    }
}

/// A resource tag, as the ECS API spells it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
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

impl AssignPublicIp {
    pub fn is_enabled(self) -> bool {
        self == AssignPublicIp::Enabled
    }
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
