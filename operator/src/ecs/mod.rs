//! ECS (Fargate) output from the same CollabServer spec: `collab-operator ecs render`.
//!
//! ```text
//! collabserver.yaml ─▶ parse_collab_server ─┐
//!                                           ├─▶ render: validate (the operator's own, knowing
//! ecs.yaml ─▶ EcsOptions::from_yaml ────────┘   only Secret key names) ─▶ task definition,
//!                                               service (create and update), NOTES.md
//! ```
//!
//! Everything is pure: nothing is fetched from AWS and nothing is written here (the binary
//! writes [`Rendered::files`]). The container's environment comes from
//! [`server_env::environment`], exactly as the Kubernetes Deployment's does; Secret
//! references become `secrets[].valueFrom` with the ARNs `ecs.yaml` maps them to.

pub mod autoscaling;
pub mod fargate;
mod notes;
pub mod options;
pub mod service;
pub mod target_group;
pub mod task_definition;
pub mod terraform;

use std::collections::{BTreeMap, BTreeSet};

use kube::Resource;
use serde::{Deserialize, Serialize};

pub use options::EcsOptions;

use crate::crd::CollabServer;
use crate::dereferenced::{self, Dereferenced};
use crate::server_contract;
use crate::server_contract::{HTTP_PORT_NAME, METRICS_PORT_NAME};
use crate::server_env::{self, EnvValue};
use crate::validate::{
    self, OperatorDefaults, Redis, Scaling, SecretRef, Storage, ValidatedCollabServer,
};
use autoscaling::Autoscaling;
use service::{
    AwsVpcConfiguration, CapacityProvider, CapacityProviderStrategyItem, CreateService,
    DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentController,
    DeploymentControllerType, LoadBalancer, NetworkConfiguration, SchedulingStrategy,
    ServiceSettings, Tag, UpdateService,
};
use target_group::{TargetGroupAttributes, TargetGroupHealthCheck};
use task_definition::{
    Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, LinuxParameters,
    LogConfiguration, LogDriver, MountPoint, NetworkMode, OsFamily, PortMapping, RuntimePlatform,
    Secret, TaskDefinition, TransportProtocol, Ulimit, UlimitName, Volume,
};
use terraform::Terraform;

/// Open files per task: Fargate's default, set explicitly; well above the server's default
/// `COLLAB_SERVER_MAX_CONNECTIONS` (20000).
pub const NOFILE_LIMIT: u32 = 65535;
/// The writable scratch directory of the otherwise read-only root filesystem.
const TMP_VOLUME: &str = "tmp";
/// The platform version: 1.4.0 or later is needed for `:json-key::` secrets and 8+ vCPU.
const PLATFORM_VERSION: &str = "LATEST";
/// Health check timing of the container (as the image's own HEALTHCHECK). The start period is
/// the server's start-up window ([`server_contract::STARTUP_SECONDS`], the Kubernetes startup
/// probe's): failures before it ends do not count, so a task running migrations is not killed.
const HEALTH_CHECK_INTERVAL_SECONDS: u32 = 30;
const HEALTH_CHECK_TIMEOUT_SECONDS: u32 = 5;
const HEALTH_CHECK_RETRIES: u32 = 3;
const HEALTH_CHECK_START_PERIOD_SECONDS: i32 = server_contract::STARTUP_SECONDS;

/// The names the files get in the output directory.
pub const TASK_DEFINITION_FILE: &str = "task-definition.json";
pub const SERVICE_FILE: &str = "service.json";
pub const SERVICE_UPDATE_FILE: &str = "service-update.json";
pub const NOTES_FILE: &str = "NOTES.md";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("collabserver.yaml: {error}")]
    ParseCollabServer { error: serde_yaml::Error },

    #[error(
        "collabserver.yaml: document {document} is {found}, not a {expected} CollabServer (give only the CollabServer: on ECS, ecs.yaml maps its Secret keys to Secrets Manager or SSM ARNs)"
    )]
    NotACollabServer {
        document: usize,
        found: String,
        expected: String,
    },

    #[error(
        "collabserver.yaml: {field} is not a CollabServer field (see docs/operator.md for the reference)"
    )]
    UnknownCollabServerField { field: String },

    #[error("collabserver.yaml: holds no CollabServer")]
    NoCollabServer,

    #[error("collabserver.yaml: holds more than one CollabServer; render one at a time")]
    SeveralCollabServers,

    #[error("ecs.yaml: {error}")]
    ParseOptions { error: serde_yaml::Error },

    #[error("ecs.yaml: {field}: {problem}")]
    InvalidOption { field: String, problem: String },

    #[error(
        "ecs.yaml: cpu {cpu} with memory {memory} is not a Fargate task size; valid sizes (cpu units, memory MiB) are {}",
        fargate::task_sizes()
    )]
    InvalidTaskSize { cpu: u32, memory: u32 },

    #[error(
        "ecs.yaml: image is required unless the CollabServer sets spec.image (e.g. ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG)"
    )]
    MissingImage,

    #[error(
        "ecs.yaml: secrets: no ARN for Secret {secret} key {key} ({field}): add {{name: {secret}, key: {key}, valueFrom: ARN}}"
    )]
    MissingSecretArn {
        field: String,
        secret: String,
        key: String,
    },

    #[error(
        "ecs.yaml: secrets: no ARN for Secret {secret} key DATABASE_URL, uri or host (spec.database.secretRef): map the key holding the postgres:// URL (or name it in spec.database.secretRef.key), or host and, as needed, port, dbname, username and password"
    )]
    MissingDatabaseSecretArn { secret: String },

    #[error(
        "ecs.yaml: secrets[{index}]: the CollabServer reads no Secret {secret} key {key}: remove the entry or correct its name and key"
    )]
    UnusedSecretArn {
        index: usize,
        secret: String,
        key: String,
    },

    #[error("collabserver.yaml: {0}")]
    Validate(validate::Error),

    #[error(
        "collabserver.yaml: spec.redis.managed needs a Kubernetes cluster to run in: on ECS use spec.redis.external with a Secret key holding the rediss:// URL of ElastiCache"
    )]
    ManagedRedis,

    #[error(
        "collabserver.yaml: spec.database is required on ECS: a Fargate task has no persistent volume for the embedded SQLite database, so documents would be lost with every task"
    )]
    SqliteUnsupported,

    #[error(
        "collabserver.yaml: spec.terminationGracePeriodSeconds {grace_period} gives a container stopTimeout of {stop_timeout} s (ECS needs no preStop pause: the grace period less {pre_stop} s), over Fargate's maximum of {max} s: set at most {}",
        .max + .pre_stop
    )]
    StopTimeoutTooLong {
        grace_period: i64,
        stop_timeout: i64,
        pre_stop: i64,
        max: i64,
    },

    #[error(
        "collabserver.yaml: spec.env[{index}] ({name}): ECS has only values and Secrets; use value or valueFrom.secretKeyRef"
    )]
    UnsupportedEnvSource { index: usize, name: String },

    #[error("collabserver.yaml: spec.env[{index}]: {name} is set twice")]
    DuplicateEnvironmentVariable { index: usize, name: String },

    #[error("failed to serialize {file}: {error}")]
    Serialize {
        file: &'static str,
        error: serde_json::Error,
    },
}

impl Error {
    /// A static name of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ParseCollabServer { .. } => "ParseCollabServer",
            Error::NotACollabServer { .. } => "NotACollabServer",
            Error::UnknownCollabServerField { .. } => "UnknownCollabServerField",
            Error::NoCollabServer => "NoCollabServer",
            Error::SeveralCollabServers => "SeveralCollabServers",
            Error::ParseOptions { .. } => "ParseOptions",
            Error::InvalidOption { .. } => "InvalidOption",
            Error::InvalidTaskSize { .. } => "InvalidTaskSize",
            Error::MissingImage => "MissingImage",
            Error::MissingSecretArn { .. } => "MissingSecretArn",
            Error::MissingDatabaseSecretArn { .. } => "MissingDatabaseSecretArn",
            Error::UnusedSecretArn { .. } => "UnusedSecretArn",
            Error::Validate(error) => error.kind(),
            Error::ManagedRedis => "ManagedRedis",
            Error::SqliteUnsupported => "SqliteUnsupported",
            Error::StopTimeoutTooLong { .. } => "StopTimeoutTooLong",
            Error::UnsupportedEnvSource { .. } => "UnsupportedEnvSource",
            Error::DuplicateEnvironmentVariable { .. } => "DuplicateEnvironmentVariable",
            Error::Serialize { .. } => "Serialize",
        }
    }
}

/// Which files `ecs render` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// AWS CLI `--cli-input-json` inputs.
    Cli,
    /// Terraform JSON configuration (`*.tf.json`).
    Terraform,
}

/// What `ecs render` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// `aws ecs register-task-definition --cli-input-json file://task-definition.json`.
    pub task_definition: TaskDefinition,
    /// `aws ecs create-service --cli-input-json file://service.json`.
    pub service: CreateService,
    /// `aws ecs update-service --cli-input-json file://service-update.json`.
    pub service_update: UpdateService,
    /// `aws elbv2 modify-target-group-attributes --cli-input-json`.
    pub target_group_attributes: TargetGroupAttributes,
    /// `aws elbv2 modify-target-group --cli-input-json`.
    pub target_group_health_check: TargetGroupHealthCheck,
    /// Application Auto Scaling inputs, when the CollabServer autoscales.
    pub autoscaling: Option<Autoscaling>,
    /// The same as Terraform configuration.
    pub terraform: Terraform,
    /// What the JSON cannot say: load balancer settings, permissions, ignored spec fields.
    pub notes: String,
}

impl Rendered {
    /// File names and contents of one format, JSON pretty-printed with a final newline;
    /// `NOTES.md` with either.
    pub fn files(&self, format: Format) -> Result<Vec<(&'static str, String)>, Error> {
        let mut files = Vec::new();
        match format {
            Format::Cli => {
                files.push((
                    TASK_DEFINITION_FILE,
                    to_json(TASK_DEFINITION_FILE, &self.task_definition)?,
                ));
                files.push((SERVICE_FILE, to_json(SERVICE_FILE, &self.service)?));
                files.push((
                    SERVICE_UPDATE_FILE,
                    to_json(SERVICE_UPDATE_FILE, &self.service_update)?,
                ));
                files.push((
                    target_group::ATTRIBUTES_FILE,
                    to_json(target_group::ATTRIBUTES_FILE, &self.target_group_attributes)?,
                ));
                files.push((
                    target_group::HEALTH_CHECK_FILE,
                    to_json(
                        target_group::HEALTH_CHECK_FILE,
                        &self.target_group_health_check,
                    )?,
                ));
                if let Some(scaling) = &self.autoscaling {
                    files.push((
                        autoscaling::SCALABLE_TARGET_FILE,
                        to_json(autoscaling::SCALABLE_TARGET_FILE, &scaling.target)?,
                    ));
                    files.push((
                        autoscaling::CPU_POLICY_FILE,
                        to_json(autoscaling::CPU_POLICY_FILE, &scaling.cpu)?,
                    ));
                    if let Some(requests) = &scaling.requests {
                        files.push((
                            autoscaling::REQUESTS_POLICY_FILE,
                            to_json(autoscaling::REQUESTS_POLICY_FILE, requests)?,
                        ));
                    }
                }
            }
            Format::Terraform => {
                files.push((
                    terraform::CONFIG_FILE,
                    to_json(terraform::CONFIG_FILE, &self.terraform.config)?,
                ));
                files.push((
                    terraform::IMPORTS_FILE,
                    to_json(terraform::IMPORTS_FILE, &self.terraform.imports)?,
                ));
            }
        }
        files.push((NOTES_FILE, self.notes.clone()));
        Ok(files)
    }
}

fn to_json(file: &'static str, value: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|error| Error::Serialize { file, error })
}

/// Reads the CollabServer from YAML (one document; empty documents are skipped).
pub fn parse_collab_server(text: &str) -> Result<CollabServer, Error> {
    let expected = CollabServer::api_version(&()).into_owned();
    let mut found = None;
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|error| Error::ParseCollabServer { error })?;
        if value.is_null() {
            continue;
        }
        let field = |name: &str| value.get(name).and_then(serde_yaml::Value::as_str);
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if kind != Some("CollabServer") || api_version != Some(expected.as_str()) {
            return Err(Error::NotACollabServer {
                document: index + 1,
                found: format!(
                    "{} {}",
                    api_version.unwrap_or("(no apiVersion)"),
                    kind.unwrap_or("(no kind)")
                ),
                expected,
            });
        }
        if found.is_some() {
            return Err(Error::SeveralCollabServers);
        }
        // No API server prunes or rejects unknown fields here: a typo must not pass unnoticed.
        let mut unknown = Vec::new();
        let server: CollabServer = serde_ignored::deserialize(value, |path| {
            let path = path.to_string();
            if path != "apiVersion" && path != "kind" {
                unknown.push(path);
            }
        })
        .map_err(|error| Error::ParseCollabServer { error })?;
        if let Some(field) = unknown.into_iter().next() {
            return Err(Error::UnknownCollabServerField { field });
        }
        found = Some(server);
    }
    found.ok_or(Error::NoCollabServer)
}

/// Validates the CollabServer with the operator's own rules, knowing of each Secret only the
/// keys `ecs.yaml` maps, and renders the task definition, the service and the notes.
pub fn render(server: &CollabServer, options: &EcsOptions) -> Result<Rendered, Error> {
    options.check()?;
    if server.spec.image.is_none() && options.image.is_none() {
        return Err(Error::MissingImage);
    }
    let mut validated = validate::validate(
        server,
        &declared_secrets(server, options),
        &OperatorDefaults::default(),
    )
    .map_err(ecs_error)?;
    if let Some(image) = &options.image {
        validated.image = image.clone();
    }
    render_validated(server, validated, options)
}

/// Every Secret the CollabServer refers to, with the keys `ecs.yaml` maps (possibly none), so
/// validation reports a missing key (with the field that needs it) rather than a missing Secret.
fn declared_secrets(server: &CollabServer, options: &EcsOptions) -> Dereferenced {
    let mut declared = Dereferenced::default();
    for name in dereferenced::referenced_secrets(server) {
        declared = declared.with_declared_secret(&name, std::iter::empty::<String>());
    }
    for secret in &options.secrets {
        declared = declared.with_declared_secret(&secret.name, [secret.key.as_str()]);
    }
    declared
}

/// Validation errors about Secrets are, on ECS, errors about `ecs.yaml`'s secrets.
fn ecs_error(error: validate::Error) -> Error {
    match error {
        validate::Error::SecretKeyNotFound {
            field, secret, key, ..
        } => Error::MissingSecretArn { field, secret, key },
        validate::Error::DatabaseSecretWithoutConnection { secret, .. } => {
            Error::MissingDatabaseSecretArn { secret }
        }
        validate::Error::ManagedRedisUnavailable => Error::ManagedRedis,
        other => Error::Validate(other),
    }
}

/// The ARNs of `ecs.yaml`, looked up by Secret reference; remembers which were used.
struct SecretArns<'a> {
    options: &'a EcsOptions,
    used: BTreeSet<usize>,
}

impl SecretArns<'_> {
    fn find(&mut self, name: &str, key: &str) -> Option<String> {
        let index = self
            .options
            .secrets
            .iter()
            .position(|secret| secret.name == name && secret.key == key)?;
        self.used.insert(index);
        Some(self.options.secrets[index].value_from.clone())
    }

    fn require(&mut self, field: &str, reference: &SecretRef) -> Result<String, Error> {
        self.find(&reference.name, &reference.key)
            .ok_or_else(|| Error::MissingSecretArn {
                field: field.to_owned(),
                secret: reference.name.clone(),
                key: reference.key.clone(),
            })
    }

    /// The first entry no variable uses.
    fn unused(&self) -> Option<(usize, &options::SecretArn)> {
        self.options
            .secrets
            .iter()
            .enumerate()
            .find(|(index, _)| !self.used.contains(index))
    }
}

/// The container's environment: literals and Secret-backed variables.
struct Environment {
    environment: Vec<KeyValuePair>,
    secrets: Vec<Secret>,
}

fn environment(
    server: &ValidatedCollabServer,
    arns: &mut SecretArns<'_>,
) -> Result<Environment, Error> {
    let mut result = Environment {
        environment: Vec::new(),
        secrets: Vec::new(),
    };
    for variable in server_env::environment(server) {
        match variable.value {
            EnvValue::Literal(value) => result.environment.push(KeyValuePair {
                name: variable.name.to_owned(),
                value,
            }),
            EnvValue::Secret(reference) => result.secrets.push(Secret {
                name: variable.name.to_owned(),
                value_from: arns.require(&format!("the server's {}", variable.name), &reference)?,
            }),
        }
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (index, variable) in server.extra_env.iter().enumerate() {
        if !names.insert(variable.name.clone()) {
            return Err(Error::DuplicateEnvironmentVariable {
                index,
                name: variable.name.clone(),
            });
        }
        let Some(source) = &variable.value_from else {
            result.environment.push(KeyValuePair {
                name: variable.name.clone(),
                value: variable.value.clone().unwrap_or_default(),
            });
            continue;
        };
        let unsupported = Error::UnsupportedEnvSource {
            index,
            name: variable.name.clone(),
        };
        let Some(selector) = &source.secret_key_ref else {
            return Err(unsupported);
        };
        if source.config_map_key_ref.is_some()
            || source.field_ref.is_some()
            || source.resource_field_ref.is_some()
        {
            return Err(unsupported);
        }
        let value_from = match arns.find(&selector.name, &selector.key) {
            Some(arn) => arn,
            // An optional key that ecs.yaml does not map: the variable stays unset.
            None if selector.optional == Some(true) => continue,
            None => {
                return Err(Error::MissingSecretArn {
                    field: format!("spec.env[{index}].valueFrom.secretKeyRef"),
                    secret: selector.name.clone(),
                    key: selector.key.clone(),
                });
            }
        };
        result.secrets.push(Secret {
            name: variable.name.clone(),
            value_from,
        });
    }
    Ok(result)
}

fn render_validated(
    spec: &CollabServer,
    mut server: ValidatedCollabServer,
    options: &EcsOptions,
) -> Result<Rendered, Error> {
    if matches!(server.storage, Storage::Sqlite { .. }) {
        return Err(Error::SqliteUnsupported);
    }
    if matches!(server.redis, Some(Redis::Managed(_))) {
        return Err(Error::ManagedRedis);
    }

    // ECS drains the target before SIGTERM, so the grace period's preStop pause is not needed;
    // the server's shutdown timeout is derived from the stop timeout.
    let grace_period = server.shutdown.termination_grace_period_seconds;
    let stop_timeout = server_contract::stop_timeout_for_grace_period(grace_period);
    if stop_timeout > fargate::MAX_STOP_TIMEOUT_SECONDS {
        return Err(Error::StopTimeoutTooLong {
            grace_period,
            stop_timeout,
            pre_stop: server_contract::PRE_STOP_SLEEP_SECONDS,
            max: fargate::MAX_STOP_TIMEOUT_SECONDS,
        });
    }
    server.shutdown.server_timeout_seconds =
        server_contract::shutdown_timeout_for_stop_timeout(stop_timeout);

    let desired_count = match (options.desired_count, server.scaling) {
        (Some(count), _) => count,
        (None, Scaling::Fixed { replicas }) => replicas,
        (None, Scaling::Autoscaled { min_replicas, .. }) => min_replicas,
    };
    if desired_count > 1 && server.redis.is_none() {
        return Err(Error::InvalidOption {
            field: "desiredCount".to_owned(),
            problem: format!(
                "{desired_count} tasks need spec.redis in the CollabServer: without it tasks cannot see each other's edits"
            ),
        });
    }
    // Application Auto Scaling owns the count of an autoscaled service: an update keeps it.
    let update_desired_count = match server.scaling {
        Scaling::Autoscaled { .. } if options.desired_count.is_none() => None,
        _ => Some(desired_count),
    };

    let mut arns = SecretArns {
        options,
        used: BTreeSet::new(),
    };
    let Environment {
        environment,
        secrets,
    } = environment(&server, &mut arns)?;
    if let Some((index, secret)) = arns.unused() {
        return Err(Error::UnusedSecretArn {
            index,
            secret: secret.name.clone(),
            key: secret.key.clone(),
        });
    }

    let container_name = options.container_name().to_owned();
    let mut log_options = BTreeMap::from([
        ("awslogs-group".to_owned(), options.logs.group.clone()),
        ("awslogs-region".to_owned(), options.region.clone()),
        (
            "awslogs-stream-prefix".to_owned(),
            options.log_stream_prefix().to_owned(),
        ),
    ]);
    if options.logs.create_group {
        log_options.insert("awslogs-create-group".to_owned(), "true".to_owned());
    }
    let container = ContainerDefinition {
        name: container_name.clone(),
        image: server.image.clone(),
        essential: true,
        port_mappings: vec![
            PortMapping {
                name: HTTP_PORT_NAME.to_owned(),
                container_port: server.port,
                protocol: TransportProtocol::Tcp,
            },
            PortMapping {
                name: METRICS_PORT_NAME.to_owned(),
                container_port: server_contract::METRICS_PORT,
                protocol: TransportProtocol::Tcp,
            },
        ],
        environment,
        secrets,
        log_configuration: LogConfiguration {
            log_driver: LogDriver::Awslogs,
            options: log_options,
        },
        health_check: HealthCheck {
            command: std::iter::once("CMD")
                .chain(server_contract::HEALTHCHECK_COMMAND)
                .map(str::to_owned)
                .collect(),
            interval: HEALTH_CHECK_INTERVAL_SECONDS,
            timeout: HEALTH_CHECK_TIMEOUT_SECONDS,
            retries: HEALTH_CHECK_RETRIES,
            start_period: u32::try_from(HEALTH_CHECK_START_PERIOD_SECONDS).unwrap_or(0),
        },
        stop_timeout,
        ulimits: vec![Ulimit {
            name: UlimitName::Nofile,
            soft_limit: NOFILE_LIMIT,
            hard_limit: NOFILE_LIMIT,
        }],
        // The SSM agent of ECS Exec writes into the container's filesystem.
        readonly_root_filesystem: !options.enable_execute_command,
        mount_points: vec![MountPoint {
            source_volume: TMP_VOLUME.to_owned(),
            container_path: "/tmp".to_owned(),
            read_only: false,
        }],
        linux_parameters: options.enable_execute_command.then_some(LinuxParameters {
            init_process_enabled: true,
        }),
    };
    let tags: Vec<Tag> = options
        .tags
        .iter()
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let task_definition = TaskDefinition {
        family: options.family().to_owned(),
        task_role_arn: options.task_role_arn.clone(),
        execution_role_arn: options.execution_role_arn.clone(),
        network_mode: NetworkMode::Awsvpc,
        requires_compatibilities: vec![Compatibility::Fargate],
        cpu: options.cpu.to_string(),
        memory: options.memory.to_string(),
        runtime_platform: RuntimePlatform {
            operating_system_family: OsFamily::Linux,
            cpu_architecture: options.cpu_architecture,
        },
        container_definitions: vec![container],
        volumes: vec![Volume {
            name: TMP_VOLUME.to_owned(),
        }],
        tags: tags.clone(),
    };
    // Fargate Spot: a capacity provider strategy, which replaces the launch type.
    let capacity_provider_strategy = options
        .fargate_spot
        .as_ref()
        .map(|spot| {
            vec![
                CapacityProviderStrategyItem {
                    capacity_provider: CapacityProvider::Fargate,
                    weight: spot.on_demand_weight,
                    base: spot.on_demand_base,
                },
                CapacityProviderStrategyItem {
                    capacity_provider: CapacityProvider::FargateSpot,
                    weight: spot.spot_weight,
                    base: 0,
                },
            ]
        })
        .unwrap_or_default();

    let settings = ServiceSettings {
        platform_version: PLATFORM_VERSION.to_owned(),
        network_configuration: NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: options.network.subnets.clone(),
                security_groups: options.network.security_groups.clone(),
                assign_public_ip: options.network.assign_public_ip,
            },
        },
        load_balancers: vec![LoadBalancer {
            target_group_arn: options.load_balancer.target_group_arn.clone(),
            container_name,
            container_port: server.port,
        }],
        health_check_grace_period_seconds: options.health_check_grace_period_seconds(),
        // One new task before an old one stops; a deployment whose tasks keep failing stops
        // and rolls back to the last one that completed.
        deployment_configuration: DeploymentConfiguration {
            deployment_circuit_breaker: DeploymentCircuitBreaker {
                enable: true,
                rollback: true,
            },
            maximum_percent: 200,
            minimum_healthy_percent: 100,
        },
        capacity_provider_strategy,
        enable_execute_command: options.enable_execute_command,
        propagate_tags: options.propagate_tags,
        enable_ecs_managed_tags: true,
        availability_zone_rebalancing: options.availability_zone_rebalancing,
    };
    let service = CreateService {
        cluster: options.cluster.clone(),
        service_name: options.service.clone(),
        task_definition: options.family().to_owned(),
        desired_count,
        launch_type: settings
            .capacity_provider_strategy
            .is_empty()
            .then_some(Compatibility::Fargate),
        scheduling_strategy: SchedulingStrategy::Replica,
        deployment_controller: DeploymentController {
            type_: DeploymentControllerType::Ecs,
        },
        settings: settings.clone(),
        tags,
    };
    let service_update = UpdateService {
        cluster: options.cluster.clone(),
        service: options.service.clone(),
        task_definition: options.family().to_owned(),
        desired_count: update_desired_count,
        settings,
    };
    let autoscaling = match server.scaling {
        Scaling::Autoscaled {
            min_replicas,
            max_replicas,
            target_cpu_utilization_percentage,
            ..
        } => Some(autoscaling::autoscaling(
            options,
            min_replicas,
            max_replicas,
            target_cpu_utilization_percentage,
        )),
        Scaling::Fixed { .. } => None,
    };
    let (target_group_attributes, target_group_health_check) =
        target_group::target_group(&options.load_balancer.target_group_arn);
    let terraform = terraform::terraform(&terraform::Parts {
        options,
        task_definition: &task_definition,
        service: &service,
        autoscaling: autoscaling.as_ref(),
        target_group_attributes: &target_group_attributes,
        target_group_health_check: &target_group_health_check,
        port: server.port,
    })
    .map_err(|error| Error::Serialize {
        file: terraform::CONFIG_FILE,
        error,
    })?;
    let notes = notes::notes(&notes::Facts {
        spec,
        server: &server,
        options,
        task_definition: &task_definition,
        desired_count,
        autoscaling: autoscaling.as_ref(),
    });
    Ok(Rendered {
        task_definition,
        service,
        service_update,
        target_group_attributes,
        target_group_health_check,
        autoscaling,
        terraform,
        notes,
    })
}

#[cfg(test)]
mod tests;
