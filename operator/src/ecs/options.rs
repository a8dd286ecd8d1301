//! `ecs.yaml`: what only AWS knows about a deployment (account, region, cluster, roles,
//! network, target group, log group, task size and the ARNs behind the CollabServer's Secret
//! references). Nothing about the server itself: that is the CollabServer's.
//!
//! [`EcsOptions::from_yaml`] parses (unknown and missing fields are errors naming the field),
//! [`EcsOptions::check`] checks each value's shape; whether the secrets match the CollabServer
//! is checked by [`super::render`], which knows both.

use std::collections::BTreeSet;

use serde::Deserialize;

pub use super::service::AssignPublicIp;
pub use super::task_definition::CpuArchitecture;
use super::{Error, fargate};
use crate::controller::build::CONTAINER_NAME;

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
    /// Seconds ECS ignores failing load balancer health checks after a task starts (default 60).
    #[serde(default)]
    pub health_check_grace_period_seconds: Option<i32>,
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
pub const DEFAULT_HEALTH_CHECK_GRACE_PERIOD_SECONDS: i32 = 60;

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

    pub fn health_check_grace_period_seconds(&self) -> i32 {
        self.health_check_grace_period_seconds
            .unwrap_or(DEFAULT_HEALTH_CHECK_GRACE_PERIOD_SECONDS)
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
        self.check_logs()?;
        if let Some(seconds) = self.health_check_grace_period_seconds
            && seconds < 0
        {
            return invalid("healthCheckGracePeriodSeconds", "must not be negative");
        }
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
