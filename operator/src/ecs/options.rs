//! `ecs.yaml`: what only AWS knows about a deployment (account, region, cluster, roles,
//! network, target group, log group, task size and the ARNs behind the CollabServer's Secret
//! references). Nothing about the server itself: that is the CollabServer's.
//!
//! [`EcsOptions::from_yaml`] parses (unknown and missing fields are errors naming the field),
//! [`EcsOptions::check`] checks each value's shape; whether the secrets match the CollabServer
//! is checked by [`super::render`], which knows both.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

pub use super::service::{AssignPublicIp, AvailabilityZoneRebalancing, PropagateTags};
pub use super::task_definition::CpuArchitecture;
use super::{Error, fargate};
use crate::server_contract;
use crate::server_contract::CONTAINER_NAME;

/// The `--ecs` file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcsOptions {
    /// The 12-digit AWS account id (quoted in YAML); role and target group ARNs must be in it.
    pub account_id: String,
    /// Region of the cluster, e.g. `ap-northeast-1`.
    pub region: String,
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name.
    pub service: String,
    /// Task definition family (default: the service name).
    #[serde(default)]
    pub family: Option<String>,
    /// Name of the server container (default `collab-server`, as on Kubernetes).
    #[serde(default)]
    pub container_name: Option<String>,
    /// Image, e.g. an ECR URI; overrides the CollabServer's `spec.image`.
    #[serde(default)]
    pub image: Option<String>,
    /// Task CPU units (256 = 0.25 vCPU); with `memory`, a Fargate task size.
    pub cpu: u32,
    /// Task memory in MiB.
    pub memory: u32,
    /// CPU architecture of the image (default `X86_64`).
    #[serde(default)]
    pub cpu_architecture: CpuArchitecture,
    /// Tasks to run (default: the CollabServer's replicas, or `autoscaling.minReplicas`).
    #[serde(default)]
    pub desired_count: Option<i32>,
    /// Role ECS uses to pull the image, read the secrets and write logs.
    pub execution_role_arn: String,
    /// Role of the server process itself (optional: collab-server calls no AWS API).
    #[serde(default)]
    pub task_role_arn: Option<String>,
    /// Subnets, security groups and public IP of the tasks (`awsvpc`).
    pub network: Network,
    /// The ALB target group the service registers tasks with.
    pub load_balancer: LoadBalancer,
    /// CloudWatch Logs (`awslogs`).
    pub logs: Logs,
    /// Seconds ECS ignores failing load balancer health checks after a task starts (default:
    /// the server's start-up window, 120, as the Kubernetes startup probe allows).
    #[serde(default)]
    pub health_check_grace_period_seconds: Option<i32>,
    /// ECS Exec (`aws ecs execute-command`; default off, as in Copilot). Turns on the init
    /// process, needs a task role and a writable root filesystem (the SSM agent writes to it).
    #[serde(default)]
    pub enable_execute_command: bool,
    /// Which tags ECS copies to the tasks: `SERVICE` (default, as in Copilot),
    /// `TASK_DEFINITION` or `NONE`.
    #[serde(default)]
    pub propagate_tags: PropagateTags,
    /// Tags of the task definition and the service (and, propagated, of every task).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Run part of the tasks on Fargate Spot (a capacity provider strategy instead of the
    /// `FARGATE` launch type).
    #[serde(default)]
    pub fargate_spot: Option<FargateSpot>,
    /// `ENABLED` (default, as for new services) or `DISABLED`: ECS moves tasks to even out
    /// the availability zones after a zone recovers.
    #[serde(default)]
    pub availability_zone_rebalancing: AvailabilityZoneRebalancing,
    /// Application Auto Scaling of an autoscaled CollabServer (`spec.autoscaling`).
    #[serde(default)]
    pub autoscaling: AutoscalingOptions,
    /// The value (`valueFrom`) behind each Secret key the CollabServer reads.
    #[serde(default)]
    pub secrets: Vec<SecretArn>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    /// Subnet ids (`subnet-…`), private ones behind an ALB.
    pub subnets: Vec<String>,
    /// Security group ids (`sg-…`); they must let the ALB reach the container port.
    pub security_groups: Vec<String>,
    /// `DISABLED` (default; private subnets with a NAT gateway or VPC endpoints for ECR,
    /// Secrets Manager and CloudWatch Logs) or `ENABLED` (public subnets).
    #[serde(default)]
    pub assign_public_ip: AssignPublicIp,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID` (target type `ip`).
    pub target_group_arn: String,
    /// The ALB's ARN (`...:loadbalancer/app/NAME/ID`): needed to scale on requests per target.
    #[serde(default)]
    pub load_balancer_arn: Option<String>,
    /// The target group's VPC (`vpc-…`): with it the Terraform output declares the target
    /// group (to import) with the attributes the server needs.
    #[serde(default)]
    pub vpc_id: Option<String>,
}

/// Tasks beyond `onDemandBase` are spread `onDemandWeight : spotWeight` between `FARGATE` and
/// `FARGATE_SPOT`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FargateSpot {
    /// Share of `FARGATE_SPOT` (0-1000).
    pub spot_weight: u32,
    /// Share of on-demand `FARGATE` (0-1000; default 1).
    #[serde(default = "default_on_demand_weight")]
    pub on_demand_weight: u32,
    /// Tasks that always run on demand, before the weights apply (default 1, so Spot
    /// interruptions never take the last task).
    #[serde(default = "default_on_demand_base")]
    pub on_demand_base: u32,
}

fn default_on_demand_weight() -> u32 {
    1
}

fn default_on_demand_base() -> u32 {
    1
}

/// Application Auto Scaling beyond the CollabServer's CPU target.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalingOptions {
    /// Also track ALB requests per target per minute (each WebSocket connection is one
    /// request); needs `loadBalancer.loadBalancerArn`.
    #[serde(default)]
    pub requests_per_target: Option<u32>,
    /// Seconds after a scale-in before the next (default 120, as in Copilot).
    #[serde(default)]
    pub scale_in_cooldown_seconds: Option<u32>,
    /// Seconds after a scale-out before the next (default 60, as in Copilot).
    #[serde(default)]
    pub scale_out_cooldown_seconds: Option<u32>,
}

impl AutoscalingOptions {
    pub fn scale_in_cooldown_seconds(&self) -> u32 {
        self.scale_in_cooldown_seconds
            .unwrap_or(DEFAULT_SCALE_IN_COOLDOWN_SECONDS)
    }

    pub fn scale_out_cooldown_seconds(&self) -> u32 {
        self.scale_out_cooldown_seconds
            .unwrap_or(DEFAULT_SCALE_OUT_COOLDOWN_SECONDS)
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logs {
    /// Log group name, e.g. `/aws/ecs/zedi-dev/hocuspocus`.
    pub group: String,
    /// Stream prefix: streams are `PREFIX/CONTAINER/TASK-ID` (default `collab-server`).
    #[serde(default)]
    pub stream_prefix: Option<String>,
    /// Let ECS create the group (needs `logs:CreateLogGroup` on the execution role).
    #[serde(default)]
    pub create_group: bool,
}

/// One Secret key of the CollabServer and where ECS reads its value.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretArn {
    /// The Secret name the CollabServer refers to.
    pub name: String,
    /// The key the CollabServer refers to.
    pub key: String,
    /// A Secrets Manager secret ARN (with `:JSON-KEY::` for one key of a JSON secret) or an
    /// SSM parameter ARN.
    pub value_from: String,
}

pub const DEFAULT_LOG_STREAM_PREFIX: &str = "collab-server";
pub const DEFAULT_SCALE_IN_COOLDOWN_SECONDS: u32 = 120;
pub const DEFAULT_SCALE_OUT_COOLDOWN_SECONDS: u32 = 60;
/// Capacity provider weights and bases ECS accepts.
const MAX_CAPACITY_WEIGHT: u32 = 1000;
const MAX_CAPACITY_BASE: u32 = 100_000;
/// Tags ECS accepts on one resource (of which `aws:` ones are reserved).
const MAX_TAGS: usize = 50;

impl EcsOptions {
    /// Parses an `ecs.yaml`.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        serde_yaml::from_str(text).map_err(|error| Error::ParseOptions { error })
    }

    pub fn family(&self) -> &str {
        self.family.as_deref().unwrap_or(&self.service)
    }

    pub fn container_name(&self) -> &str {
        self.container_name.as_deref().unwrap_or(CONTAINER_NAME)
    }

    pub fn log_stream_prefix(&self) -> &str {
        self.logs
            .stream_prefix
            .as_deref()
            .unwrap_or(DEFAULT_LOG_STREAM_PREFIX)
    }

    /// The grace period: `ecs.yaml`'s, else the server's start-up window.
    pub fn health_check_grace_period_seconds(&self) -> i32 {
        self.health_check_grace_period_seconds
            .unwrap_or(server_contract::STARTUP_SECONDS)
    }

    /// The target group's name, from its ARN (`targetgroup/NAME/ID`).
    pub fn target_group_name(&self) -> &str {
        Arn::parse(&self.load_balancer.target_group_arn)
            .and_then(|arn| arn.resource.strip_prefix("targetgroup/"))
            .and_then(|rest| rest.split_once('/'))
            .map_or("", |(name, _)| name)
    }

    /// `app/NAME/ID` of the ALB, as Application Auto Scaling's resource label wants it.
    pub fn load_balancer_label(&self) -> Option<&str> {
        let arn = Arn::parse(self.load_balancer.load_balancer_arn.as_deref()?)?;
        arn.resource.strip_prefix("loadbalancer/")
    }

    /// Checks every value's shape; the first problem is the error, naming its field.
    pub fn check(&self) -> Result<(), Error> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return invalid("accountId", "must be the 12-digit account id, quoted");
        }
        if !is_region(&self.region) {
            return invalid("region", "must be a region name such as ap-northeast-1");
        }
        if !(self.cluster.starts_with("arn:") || is_name(&self.cluster, 255)) {
            return invalid(
                "cluster",
                "must be a cluster name (letters, digits, - and _) or ARN",
            );
        }
        check_name("service", &self.service)?;
        if let Some(family) = &self.family {
            check_name("family", family)?;
        }
        if let Some(name) = &self.container_name {
            check_name("containerName", name)?;
        }
        if let Some(image) = &self.image
            && (image.is_empty() || image.chars().any(char::is_whitespace))
        {
            return invalid(
                "image",
                "must be an image reference such as ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG",
            );
        }
        if !fargate::is_task_size(self.cpu, self.memory) {
            return Err(Error::InvalidTaskSize {
                cpu: self.cpu,
                memory: self.memory,
            });
        }
        if let Some(count) = self.desired_count
            && count < 0
        {
            return invalid("desiredCount", "must not be negative");
        }
        self.check_role("executionRoleArn", &self.execution_role_arn)?;
        if let Some(role) = &self.task_role_arn {
            self.check_role("taskRoleArn", role)?;
        }
        self.check_network()?;
        self.check_target_group()?;
        self.check_load_balancer()?;
        self.check_logs()?;
        if let Some(seconds) = self.health_check_grace_period_seconds
            && seconds < 0
        {
            return invalid("healthCheckGracePeriodSeconds", "must not be negative");
        }
        if self.enable_execute_command && self.task_role_arn.is_none() {
            return invalid(
                "enableExecuteCommand",
                "needs taskRoleArn: the SSM agent in the task uses the task role (ssmmessages:CreateControlChannel, CreateDataChannel, OpenControlChannel, OpenDataChannel)",
            );
        }
        self.check_tags()?;
        self.check_fargate_spot()?;
        self.check_autoscaling()?;
        let mut seen = BTreeSet::new();
        for (index, secret) in self.secrets.iter().enumerate() {
            if !seen.insert((&secret.name, &secret.key)) {
                return Err(Error::InvalidOption {
                    field: format!("secrets[{index}]"),
                    problem: format!("Secret {} key {} is listed twice", secret.name, secret.key),
                });
            }
            check_value_from(&secret.value_from).map_err(|problem| Error::InvalidOption {
                field: format!("secrets[{index}].valueFrom"),
                problem,
            })?;
        }
        Ok(())
    }

    fn check_role(&self, field: &'static str, value: &str) -> Result<(), Error> {
        let Some(arn) = Arn::parse(value).filter(|arn| {
            arn.service == "iam"
                && arn.region.is_empty()
                && arn
                    .resource
                    .strip_prefix("role/")
                    .is_some_and(|name| !name.is_empty())
        }) else {
            return invalid(
                field,
                format!("must be an IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME (got {value})"),
            );
        };
        if arn.account != self.account_id {
            return invalid(
                field,
                format!(
                    "account {} is not accountId {}",
                    arn.account, self.account_id
                ),
            );
        }
        Ok(())
    }

    fn check_network(&self) -> Result<(), Error> {
        if self.network.subnets.is_empty() {
            return invalid(
                "network.subnets",
                "list at least one subnet id (subnet-…); two or more in different availability zones keep the service up when a zone fails",
            );
        }
        for (index, subnet) in self.network.subnets.iter().enumerate() {
            if !is_resource_id(subnet, "subnet-") {
                return invalid(
                    &format!("network.subnets[{index}]"),
                    format!("{subnet} is not a subnet id (subnet- and 8 or 17 hex digits)"),
                );
            }
        }
        if self.network.security_groups.is_empty() {
            return invalid(
                "network.securityGroups",
                "list at least one security group id (sg-…) that lets the ALB reach the container port",
            );
        }
        for (index, group) in self.network.security_groups.iter().enumerate() {
            if !is_resource_id(group, "sg-") {
                return invalid(
                    &format!("network.securityGroups[{index}]"),
                    format!("{group} is not a security group id (sg- and 8 or 17 hex digits)"),
                );
            }
        }
        Ok(())
    }

    fn check_target_group(&self) -> Result<(), Error> {
        const FIELD: &str = "loadBalancer.targetGroupArn";
        let value = &self.load_balancer.target_group_arn;
        let Some(arn) = Arn::parse(value).filter(|arn| {
            arn.service == "elasticloadbalancing"
                && arn
                    .resource
                    .strip_prefix("targetgroup/")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(name, id)| !name.is_empty() && !id.is_empty())
        }) else {
            return invalid(
                FIELD,
                "must be a target group ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
            );
        };
        if arn.region != self.region {
            return invalid(
                FIELD,
                format!(
                    "region {} is not region {}: a service uses target groups of its own region",
                    arn.region, self.region
                ),
            );
        }
        if arn.account != self.account_id {
            return invalid(
                FIELD,
                format!(
                    "account {} is not accountId {}",
                    arn.account, self.account_id
                ),
            );
        }
        Ok(())
    }

    fn check_tags(&self) -> Result<(), Error> {
        if self.tags.len() > MAX_TAGS {
            return invalid("tags", format!("at most {MAX_TAGS} tags"));
        }
        for (key, value) in &self.tags {
            let field = format!("tags.{key}");
            if key.is_empty() || key.chars().count() > 128 {
                return invalid(&field, "a tag key is 1-128 characters");
            }
            if key.to_ascii_lowercase().starts_with("aws:") {
                return invalid(&field, "tag keys starting with aws: are reserved for AWS");
            }
            if value.chars().count() > 256 {
                return invalid(&field, "a tag value is at most 256 characters");
            }
        }
        Ok(())
    }

    fn check_fargate_spot(&self) -> Result<(), Error> {
        let Some(spot) = &self.fargate_spot else {
            return Ok(());
        };
        if spot.spot_weight == 0 || spot.spot_weight > MAX_CAPACITY_WEIGHT {
            return invalid(
                "fargateSpot.spotWeight",
                format!("must be 1-{MAX_CAPACITY_WEIGHT} (leave fargateSpot out for no Spot)"),
            );
        }
        if spot.on_demand_weight > MAX_CAPACITY_WEIGHT {
            return invalid(
                "fargateSpot.onDemandWeight",
                format!("must be 0-{MAX_CAPACITY_WEIGHT}"),
            );
        }
        if spot.on_demand_base > MAX_CAPACITY_BASE {
            return invalid(
                "fargateSpot.onDemandBase",
                format!("must be 0-{MAX_CAPACITY_BASE}"),
            );
        }
        Ok(())
    }

    /// The ALB's ARN and the VPC id, both optional.
    fn check_load_balancer(&self) -> Result<(), Error> {
        if let Some(value) = &self.load_balancer.load_balancer_arn {
            const FIELD: &str = "loadBalancer.loadBalancerArn";
            let Some(arn) = Arn::parse(value).filter(|arn| {
                arn.service == "elasticloadbalancing"
                    && arn
                        .resource
                        .strip_prefix("loadbalancer/app/")
                        .and_then(|rest| rest.split_once('/'))
                        .is_some_and(|(name, id)| !name.is_empty() && !id.is_empty())
            }) else {
                return invalid(
                    FIELD,
                    "must be an Application Load Balancer ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID",
                );
            };
            if arn.region != self.region || arn.account != self.account_id {
                return invalid(
                    FIELD,
                    "must be in the region and account of the target group",
                );
            }
        }
        if let Some(vpc) = &self.load_balancer.vpc_id
            && !is_resource_id(vpc, "vpc-")
        {
            return invalid(
                "loadBalancer.vpcId",
                format!("{vpc} is not a VPC id (vpc- and 8 or 17 hex digits)"),
            );
        }
        Ok(())
    }

    fn check_autoscaling(&self) -> Result<(), Error> {
        if let Some(requests) = self.autoscaling.requests_per_target {
            if requests == 0 {
                return invalid("autoscaling.requestsPerTarget", "must be at least 1");
            }
            if self.load_balancer.load_balancer_arn.is_none() {
                return invalid(
                    "autoscaling.requestsPerTarget",
                    "needs loadBalancer.loadBalancerArn: the metric is per ALB and target group",
                );
            }
        }
        for (field, value) in [
            (
                "autoscaling.scaleInCooldownSeconds",
                self.autoscaling.scale_in_cooldown_seconds,
            ),
            (
                "autoscaling.scaleOutCooldownSeconds",
                self.autoscaling.scale_out_cooldown_seconds,
            ),
        ] {
            if value.is_some_and(|seconds| seconds > 3600) {
                return invalid(field, "must be at most 3600 seconds");
            }
        }
        Ok(())
    }

    fn check_logs(&self) -> Result<(), Error> {
        let group = &self.logs.group;
        let valid_group = !group.is_empty()
            && group.len() <= 512
            && group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c));
        if !valid_group {
            return invalid(
                "logs.group",
                "must be a log group name: up to 512 of letters, digits and . _ - / #",
            );
        }
        if let Some(prefix) = &self.logs.stream_prefix
            && (prefix.is_empty() || prefix.contains([':', '*']))
        {
            return invalid("logs.streamPrefix", "must not be empty or contain : or *");
        }
        Ok(())
    }
}

fn invalid(field: &str, problem: impl Into<String>) -> Result<(), Error> {
    Err(Error::InvalidOption {
        field: field.to_owned(),
        problem: problem.into(),
    })
}

fn check_name(field: &'static str, value: &str) -> Result<(), Error> {
    if is_name(value, 255) {
        Ok(())
    } else {
        invalid(field, "must be 1-255 letters, digits, - and _")
    }
}

/// ECS names: services, families, containers, clusters.
fn is_name(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
}

/// `subnet-0123abcd` or `subnet-0123456789abcdef0`.
fn is_resource_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|id| {
        (id.len() == 8 || id.len() == 17)
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// The parts of `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(value: &'a str) -> Option<Self> {
        let mut parts = value.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        let valid = partition.starts_with("aws")
            && !service.is_empty()
            && (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
            && !resource.is_empty()
            && !value.chars().any(char::is_whitespace);
        valid.then_some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

/// Where a secret value comes from, as ECS reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretSource<'a> {
    /// A whole Secrets Manager secret (its string value).
    SecretsManager { secret_arn: &'a str },
    /// One key of a JSON Secrets Manager secret: `ARN:JSON-KEY:VERSION-STAGE:VERSION-ID`.
    SecretsManagerJsonKey {
        secret_arn: &'a str,
        json_key: &'a str,
    },
    /// An SSM Parameter Store parameter.
    SsmParameter { parameter_arn: &'a str },
}

impl<'a> SecretSource<'a> {
    /// The ARN the execution role needs permission for (the secret, without a JSON key).
    pub fn resource_arn(&self) -> &'a str {
        match self {
            SecretSource::SecretsManager { secret_arn }
            | SecretSource::SecretsManagerJsonKey { secret_arn, .. } => secret_arn,
            SecretSource::SsmParameter { parameter_arn } => parameter_arn,
        }
    }
}

/// Parses a `valueFrom`, or says what is wrong with it.
pub fn check_value_from(value: &str) -> Result<SecretSource<'_>, String> {
    const EXPECTED: &str = "must be a Secrets Manager ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX, with :JSON-KEY:: appended for one key of a JSON secret) or an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)";
    let Some(arn) = Arn::parse(value).filter(|arn| is_region(arn.region)) else {
        return Err(format!("{EXPECTED} (got {value})"));
    };
    match arn.service {
        "secretsmanager" => {
            let Some(rest) = arn.resource.strip_prefix("secret:") else {
                return Err(format!("{EXPECTED} (got {value})"));
            };
            let fields: Vec<&str> = rest.split(':').collect();
            match fields.as_slice() {
                [name] if !name.is_empty() => {
                    Ok(SecretSource::SecretsManager { secret_arn: value })
                }
                [name, json_key, _stage, _version] if !name.is_empty() && !json_key.is_empty() => {
                    let secret_length = value.len() - rest.len() + name.len();
                    Ok(SecretSource::SecretsManagerJsonKey {
                        secret_arn: &value[..secret_length],
                        json_key,
                    })
                }
                [_, _] | [_, _, _] => Err(format!(
                    "a JSON key needs three fields after the secret ARN, the last two usually empty: ...:secret:NAME-SUFFIX:JSON-KEY:: (got {value})"
                )),
                _ => Err(format!("{EXPECTED} (got {value})")),
            }
        }
        "ssm" => match arn.resource.strip_prefix("parameter") {
            Some(name) if name.starts_with('/') && name.len() > 1 => {
                Ok(SecretSource::SsmParameter {
                    parameter_arn: value,
                })
            }
            _ => Err(format!("{EXPECTED} (got {value})")),
        },
        _ => Err(format!("{EXPECTED} (got {value})")),
    }
}
