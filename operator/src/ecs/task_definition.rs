//! The `RegisterTaskDefinition` input (`aws ecs register-task-definition --cli-input-json`),
//! as far as collab-server needs it. Member names and enum values are the ECS API's
//! (botocore's `ecs` model, which `tests/deploy/test_ecs.py` validates the output against).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::service::Tag;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub family: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    pub execution_role_arn: String,
    pub network_mode: NetworkMode,
    pub requires_compatibilities: Vec<Compatibility>,
    /// CPU units, as a string (the API's type).
    pub cpu: String,
    /// MiB, as a string (the API's type).
    pub memory: String,
    pub runtime_platform: RuntimePlatform,
    pub container_definitions: Vec<ContainerDefinition>,
    pub volumes: Vec<Volume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Awsvpc,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Compatibility {
    Fargate,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    pub operating_system_family: OsFamily,
    pub cpu_architecture: CpuArchitecture,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum OsFamily {
    #[serde(rename = "LINUX")]
    Linux,
}

/// Also the `cpuArchitecture` of `ecs.yaml` (default `X86_64`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum CpuArchitecture {
    #[default]
    #[serde(rename = "X86_64")]
    X86_64,
    #[serde(rename = "ARM64")]
    Arm64,
}

/// A task-level volume without a host path: on Fargate, a directory of the task's ephemeral
/// storage.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub port_mappings: Vec<PortMapping>,
    pub environment: Vec<KeyValuePair>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    pub log_configuration: LogConfiguration,
    pub health_check: HealthCheck,
    /// Seconds from SIGTERM to SIGKILL (Fargate: at most 120).
    pub stop_timeout: i64,
    pub ulimits: Vec<Ulimit>,
    pub readonly_root_filesystem: bool,
    pub mount_points: Vec<MountPoint>,
    /// Only with ECS Exec: an init process reaps what the SSM agent starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LinuxParameters {
    pub init_process_enabled: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub name: String,
    pub container_port: u16,
    pub protocol: TransportProtocol,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportProtocol {
    Tcp,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyValuePair {
    pub name: String,
    pub value: String,
}

/// A variable whose value ECS reads at container start from Secrets Manager or SSM.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    pub log_driver: LogDriver,
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogDriver {
    Awslogs,
}

/// A container health check; `command` starts with `CMD` (exec form).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    pub start_period: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ulimit {
    pub name: UlimitName,
    pub soft_limit: u32,
    pub hard_limit: u32,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UlimitName {
    /// Open files: the only limit Fargate lets a task set.
    Nofile,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}
