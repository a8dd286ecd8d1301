//! Step 2 of the reconcile: pure. Turns a CollabServer and what [`super::dereference`] found
//! into one [`ValidatedCollabServer`] with every default resolved, or an [`Error`] that says
//! which field is wrong and what to do about it (it becomes the `Degraded` condition's reason
//! and message, and a Warning Event).
//!
//! Secret references stay abstract ([`SecretRef`]): the Kubernetes builder maps them to
//! `secretKeyRef`, the ECS renderer to `secrets[].valueFrom`. Secret values are read only to
//! check their shape (a URL's scheme) and to hash them; no message ever contains one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        core::v1::{EnvVar, LocalObjectReference, ResourceRequirements},
        networking::v1::NetworkPolicyPeer,
    },
    apimachinery::pkg::{
        api::resource::Quantity, apis::meta::v1::OwnerReference, util::intstr::IntOrString,
    },
};
use kube::{Resource, ResourceExt};

use crate::crd::v1alpha1::{
    AuthSpec, CollabServer, DEFAULT_MAX_REPLICAS, DEFAULT_MIN_REPLICAS, DEFAULT_REPLICAS,
    DatabaseSpec, LogFormat, PodTemplateOverrides, RedisSpec, SSL_MODES, ServiceType,
};
use crate::dereferenced::{Dereferenced, REDIS_URL_KEY, RedisPassword, SecretContents};
use crate::{labels, names, server_contract};

/// Settings of the operator itself that a spec falls back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorDefaults {
    /// Server image when `spec.image` is omitted.
    pub server_image: String,
    /// Redis image when `spec.redis.managed.image` is omitted.
    pub redis_image: String,
}

/// Default server image: the collab-server image of this operator's version.
pub const DEFAULT_SERVER_IMAGE: &str = concat!("collab-server:", env!("CARGO_PKG_VERSION"));
/// Default managed Redis image.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.4-alpine";
/// Default size of the SQLite volume.
pub const DEFAULT_SQLITE_SIZE: &str = "1Gi";
/// Default ServiceMonitor scrape interval.
pub const DEFAULT_SCRAPE_INTERVAL: &str = "30s";
const DEFAULT_TARGET_CPU_PERCENT: i32 = 70;
/// Every scale-down closes sockets (their clients reconnect to other pods and load their
/// documents again), so load must stay lower for 10 minutes before a pod goes.
pub const DEFAULT_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS: i32 = 600;
/// The HorizontalPodAutoscaler's own limit (one hour).
const MAX_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
/// Keys tried, in order, when `spec.database.secretRef.key` is omitted.
pub const DATABASE_URL_KEYS: [&str; 2] = ["DATABASE_URL", "uri"];

impl Default for OperatorDefaults {
    fn default() -> Self {
        Self {
            server_image: DEFAULT_SERVER_IMAGE.to_owned(),
            redis_image: DEFAULT_REDIS_IMAGE.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the CollabServer has no metadata.name")]
    MissingName,

    #[error(
        "metadata.name {name} has {length} characters, more than {max}: the operator names objects {name}-metrics, {name}-data and {name}-redis, which must fit 63",
        length = .name.len(),
        max = names::MAX_INSTANCE_NAME_LENGTH
    )]
    NameTooLong { name: String },

    #[error("{field}: Secret {namespace}/{secret} not found: create it or correct the name")]
    SecretNotFound {
        field: String,
        namespace: String,
        secret: String,
    },

    #[error("{field}: Secret {secret} has no key {key} (its keys: {})", .available.join(", "))]
    SecretKeyNotFound {
        field: String,
        secret: String,
        key: String,
        available: Vec<String>,
    },

    #[error(
        "spec.database.secretRef: Secret {secret} has none of the keys DATABASE_URL, uri or host (its keys: {}): set secretRef.key to the key holding a postgres:// URL",
        .available.join(", ")
    )]
    DatabaseSecretWithoutConnection {
        secret: String,
        available: Vec<String>,
    },

    #[error(
        "spec.database: Secret {secret} key {key} does not hold a postgres:// or postgresql:// URL ({found})"
    )]
    UnsupportedDatabaseUrl {
        secret: String,
        key: String,
        found: String,
    },

    #[error("spec.database.sslMode must be one of {} (got {value})", SSL_MODES.join(", "))]
    InvalidSslMode { value: String },

    #[error(
        "spec.redis.external: Secret {secret} key {key} does not hold a redis:// or rediss:// URL ({found})"
    )]
    UnsupportedRedisUrl {
        secret: String,
        key: String,
        found: String,
    },

    #[error(
        "spec.auth: no token check is configured: set jwtSecretRef, jwksUrl or cognito, or set allowAnonymous: true to let anyone read and write every document"
    )]
    NoAuthentication,

    #[error("spec.auth: set only one of jwtSecretRef, jwksUrl and cognito (found {})", .found.join(" and "))]
    ConflictingAuthentication { found: Vec<&'static str> },

    #[error(
        "spec.auth: allowAnonymous is true but {method} is set, so tokens would still be required: remove one of them"
    )]
    AnonymousWithAuthentication { method: &'static str },

    #[error(
        "spec.auth: issuer and audience need jwtSecretRef, jwksUrl or cognito (an anonymous server checks no tokens)"
    )]
    ClaimsWithoutAuthentication,

    #[error("spec.auth.jwksUrl must be an https:// or http:// URL (got {url})")]
    InvalidJwksUrl { url: String },

    #[error("spec.auth.cognito.{field} must not be empty")]
    InvalidCognito { field: &'static str },

    #[error("spec.redis: set only one of external and managed")]
    ConflictingRedis,

    #[error(
        "{replicas} replicas need spec.redis (external or managed): without it replicas cannot see each other's edits; set replicas: 1 or configure redis"
    )]
    MultipleReplicasWithoutRedis { replicas: i32 },

    #[error("spec.redis.managed needs a Kubernetes cluster to run in (no password was provided)")]
    ManagedRedisUnavailable,

    #[error("spec.replicas must not be negative (got {replicas})")]
    InvalidReplicas { replicas: i32 },

    #[error("spec.autoscaling: {problem}")]
    InvalidAutoscaling { problem: String },

    #[error(
        "spec.autoscaling needs spec.database: the embedded SQLite database serves a single replica"
    )]
    AutoscalingWithoutDatabase,

    #[error(
        "spec.autoscaling needs spec.resources.requests.cpu: CPU utilization is measured against the request"
    )]
    AutoscalingWithoutCpuRequest,

    #[error("spec.port must be 1-65535 and not {metrics} (the metrics port); got {port}", metrics = server_contract::METRICS_PORT)]
    InvalidPort { port: i32 },

    #[error(
        "spec.terminationGracePeriodSeconds must be at least {minimum} (got {seconds}): the server needs time to store every document"
    )]
    TerminationGracePeriodTooShort { seconds: i64, minimum: i64 },

    #[error(
        "spec.env[{index}]: {name} is set by the operator from the spec; use the matching spec field instead"
    )]
    ReservedEnvironmentVariable { index: usize, name: String },

    #[error("spec.podTemplate.{field}: {key} is reserved for the operator")]
    ReservedPodMetadata { field: &'static str, key: String },

    #[error(
        "spec.podDisruptionBudget.maxUnavailable must be a non-negative number or a percentage like 25% (got {value})"
    )]
    InvalidPodDisruptionBudget { value: String },

    #[error("spec.ingress: {problem}")]
    InvalidIngress { problem: &'static str },

    #[error(
        "spec.database: Secret {secret} gives host but no dbname: add the key dbname, or set spec.database.databaseName (the server guesses no database name; the seed's Node server defaulted to zedi)"
    )]
    DatabaseNameMissing { secret: String },

    #[error(
        "spec.database: Secret {secret} has dbname and spec.database.databaseName is set too: keep one"
    )]
    DatabaseNameTwice { secret: String },

    #[error("spec.webhook.url must be an https:// or http:// URL (got {url:?})")]
    InvalidWebhookUrl { url: String },

    #[error(
        "spec.env[{index}]: {name} is also set by spec.{field}; set it in one place (the spec field)"
    )]
    VariableSetTwice {
        index: usize,
        name: String,
        field: &'static str,
    },
}

impl Error {
    /// A static name for metrics, and the reason of conditions and Events.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MissingName => "MissingName",
            Error::NameTooLong { .. } => "NameTooLong",
            Error::SecretNotFound { .. } => "SecretNotFound",
            Error::SecretKeyNotFound { .. } => "SecretKeyNotFound",
            Error::DatabaseSecretWithoutConnection { .. } => "DatabaseSecretWithoutConnection",
            Error::UnsupportedDatabaseUrl { .. } => "UnsupportedDatabaseUrl",
            Error::InvalidSslMode { .. } => "InvalidSslMode",
            Error::UnsupportedRedisUrl { .. } => "UnsupportedRedisUrl",
            Error::NoAuthentication => "NoAuthentication",
            Error::ConflictingAuthentication { .. } => "ConflictingAuthentication",
            Error::AnonymousWithAuthentication { .. } => "AnonymousWithAuthentication",
            Error::ClaimsWithoutAuthentication => "ClaimsWithoutAuthentication",
            Error::InvalidJwksUrl { .. } => "InvalidJwksUrl",
            Error::InvalidCognito { .. } => "InvalidCognito",
            Error::ConflictingRedis => "ConflictingRedis",
            Error::MultipleReplicasWithoutRedis { .. } => "MultipleReplicasWithoutRedis",
            Error::ManagedRedisUnavailable => "ManagedRedisUnavailable",
            Error::InvalidReplicas { .. } => "InvalidReplicas",
            Error::InvalidAutoscaling { .. } => "InvalidAutoscaling",
            Error::AutoscalingWithoutDatabase => "AutoscalingWithoutDatabase",
            Error::AutoscalingWithoutCpuRequest => "AutoscalingWithoutCpuRequest",
            Error::InvalidPort { .. } => "InvalidPort",
            Error::TerminationGracePeriodTooShort { .. } => "TerminationGracePeriodTooShort",
            Error::ReservedEnvironmentVariable { .. } => "ReservedEnvironmentVariable",
            Error::ReservedPodMetadata { .. } => "ReservedPodMetadata",
            Error::InvalidPodDisruptionBudget { .. } => "InvalidPodDisruptionBudget",
            Error::InvalidIngress { .. } => "InvalidIngress",
            Error::InvalidWebhookUrl { .. } => "InvalidWebhookUrl",
            Error::DatabaseNameMissing { .. } => "DatabaseNameMissing",
            Error::DatabaseNameTwice { .. } => "DatabaseNameTwice",
            Error::VariableSetTwice { .. } => "VariableSetTwice",
        }
    }
}

/// A key of a Secret in the CollabServer's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

/// How tokens are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `allowAnonymous: true` and no token check.
    Anonymous,
    Tokens {
        keys: TokenKeys,
        issuer: Option<String>,
        audience: Option<String>,
    },
}

/// Where token signatures are checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKeys {
    /// HS256 shared secret (`JWT_SECRET`).
    SharedSecret(SecretRef),
    /// A JWKS URL (`JWKS_URL`).
    Jwks { url: String },
    /// A Cognito user pool (`COGNITO_USER_POOL_ID`, `COGNITO_REGION`).
    Cognito {
        user_pool_id: String,
        region: String,
    },
}

/// Where documents are stored.
// One value per reconcile: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    Postgres {
        connection: PostgresConnection,
        ssl_mode: Option<String>,
    },
    /// The embedded SQLite database on a PersistentVolumeClaim; one replica.
    Sqlite {
        size: Quantity,
        storage_class_name: Option<String>,
    },
}

/// Which Secret keys give the PostgreSQL connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostgresConnection {
    /// `DATABASE_URL`.
    Url(SecretRef),
    /// `DATABASE_HOST` and `DATABASE_NAME` and, where the Secret has them, port, user and
    /// password (a CloudNativePG application Secret's `host`, `dbname`, `port`, `username`,
    /// `password`). The name is required: the server guesses none (see its `DATABASE_NAME`).
    Parts {
        host: SecretRef,
        database: DatabaseName,
        port: Option<SecretRef>,
        user: Option<SecretRef>,
        password: Option<SecretRef>,
    },
}

/// Where `DATABASE_NAME` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseName {
    /// The Secret's `dbname`.
    Secret(SecretRef),
    /// `spec.database.databaseName`.
    Literal(String),
}

/// The relay between replicas.
#[derive(Clone, Debug, PartialEq)]
pub enum Redis {
    External { url: SecretRef },
    Managed(ManagedRedis),
}

/// A Redis the operator runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedRedis {
    pub image: String,
    pub resources: ResourceRequirements,
    pub password: RedisPassword,
    /// The key of the operator's Secret holding the URL the server gets.
    pub url: SecretRef,
}

/// How many server pods run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaling {
    Fixed {
        replicas: i32,
    },
    Autoscaled {
        min_replicas: i32,
        max_replicas: i32,
        target_cpu_utilization_percentage: i32,
        /// How long load must stay lower before a pod is removed.
        scale_down_stabilization_window_seconds: i32,
        /// Target average of `collab_server_connections` per pod (a Pods metric), if any.
        connections_per_pod: Option<i32>,
    },
}

/// The server features a CollabServer turns on besides storage, relay and tokens: the document
/// API, webhooks, the demo editor and limits. Each becomes the server's own variable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `COLLAB_SERVER_API_SECRET` and whether the API is served on the metrics port only.
    pub api: Option<(SecretRef, bool)>,
    pub webhook: Option<Webhook>,
    pub demo: Option<bool>,
    /// Limits the spec sets, as (variable, value), in the spec's order.
    pub limits: Vec<(&'static str, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub secret: Option<SecretRef>,
    /// Comma-separated; `None`: the server's default (`change`).
    pub events: Option<String>,
}

impl Features {
    /// The variables these features set, with the spec field that sets each.
    fn variables(&self) -> Vec<(&'static str, &'static str)> {
        use server_contract::env;
        let mut set = Vec::new();
        if let Some((_, admin_only)) = &self.api {
            set.push((env::API_SECRET, "api.secretRef"));
            if *admin_only {
                set.push((env::API_ADMIN_ONLY, "api.adminOnly"));
            }
        }
        if let Some(webhook) = &self.webhook {
            set.push((env::WEBHOOK_URL, "webhook.url"));
            if webhook.secret.is_some() {
                set.push((env::WEBHOOK_SECRET, "webhook.secretRef"));
            }
            if webhook.events.is_some() {
                set.push((env::WEBHOOK_EVENTS, "webhook.events"));
            }
        }
        if self.demo.is_some() {
            set.push((env::DEMO, "demo"));
        }
        for (name, _) in &self.limits {
            set.push((name, "limits"));
        }
        set
    }
}

fn validate_features(
    spec: &crate::crd::CollabServerSpec,
    secrets: &mut SecretResolver<'_>,
) -> Result<Features, Error> {
    use server_contract::env;
    let api = match &spec.api {
        Some(api) => Some((
            secrets.require(
                "spec.api.secretRef",
                &api.secret_ref.name,
                &api.secret_ref.key,
            )?,
            api.admin_only,
        )),
        None => None,
    };
    let webhook = match &spec.webhook {
        Some(webhook) => {
            let url = webhook.url.trim();
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(' ') {
                return Err(Error::InvalidWebhookUrl {
                    url: webhook.url.clone(),
                });
            }
            let secret = match &webhook.secret_ref {
                Some(reference) => Some(secrets.require(
                    "spec.webhook.secretRef",
                    &reference.name,
                    &reference.key,
                )?),
                None => None,
            };
            let mut events: Vec<&str> = Vec::new();
            for event in &webhook.events {
                if !events.contains(&event.as_str()) {
                    events.push(event.as_str());
                }
            }
            Some(Webhook {
                url: url.to_owned(),
                secret,
                events: (!events.is_empty()).then(|| events.join(",")),
            })
        }
        None => None,
    };
    let mut limits = Vec::new();
    if let Some(spec_limits) = &spec.limits {
        let numbers = [
            (env::MAX_DOCUMENT_BYTES, spec_limits.max_document_bytes),
            (env::MAX_MESSAGE_BYTES, spec_limits.max_message_bytes),
            (env::MAX_CONNECTIONS, spec_limits.max_connections),
            (
                env::MAX_CONNECTIONS_PER_IP,
                spec_limits.max_connections_per_ip,
            ),
            (env::RATE_MESSAGES_PER_SEC, spec_limits.messages_per_second),
            (env::RATE_MESSAGES_BURST, spec_limits.messages_burst),
            (env::RATE_BYTES_PER_SEC, spec_limits.bytes_per_second),
            (env::RATE_BYTES_BURST, spec_limits.bytes_burst),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                limits.push((name, value.to_string()));
            }
        }
        if !spec_limits.trusted_proxies.is_empty() {
            limits.push((env::TRUSTED_PROXIES, spec_limits.trusted_proxies.join(",")));
        }
    }
    let features = Features {
        api,
        webhook,
        demo: spec.demo,
        limits,
    };
    let set = features.variables();
    for (index, variable) in spec.env.iter().enumerate() {
        if let Some((_, field)) = set.iter().find(|(name, _)| *name == variable.name) {
            return Err(Error::VariableSetTwice {
                index,
                name: variable.name.clone(),
                field,
            });
        }
    }
    Ok(features)
}

/// Stop timing of a server pod or task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// Kubernetes `terminationGracePeriodSeconds`.
    pub termination_grace_period_seconds: i64,
    /// `COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS`.
    pub server_timeout_seconds: i64,
}

/// The ServiceMonitor decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceMonitorPlan {
    Disabled,
    Create {
        interval: String,
        labels: BTreeMap<String, String>,
    },
    /// Asked for, but the cluster does not serve the ServiceMonitor CRD.
    CrdMissing,
}

/// Who may reach the server pods (empty: any source).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerNetworkPolicy {
    pub clients_from: Vec<NetworkPolicyPeer>,
    pub metrics_from: Vec<NetworkPolicyPeer>,
}

/// An Ingress for WebSocket clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    pub class_name: Option<String>,
    pub host: String,
    pub path: String,
    pub tls_secret_name: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// Something the operator decided that the status should tell a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// No database: the embedded SQLite database serves one replica, whatever was asked.
    ReplicasLimitedToOne { requested: i32 },
    /// A ServiceMonitor was asked for but its CRD is not installed.
    ServiceMonitorCrdMissing,
}

/// A CollabServer with every default resolved and every cross-field rule checked: the single
/// input of the Kubernetes builder and of the ECS renderer.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedCollabServer {
    pub name: String,
    pub namespace: String,
    /// Controller owner reference for children (absent when the object has no uid, i.e.
    /// outside a cluster).
    pub owner: Option<OwnerReference>,
    pub image: String,
    pub image_pull_policy: Option<&'static str>,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub resources: ResourceRequirements,
    pub port: u16,
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    pub auth: Auth,
    pub storage: Storage,
    pub redis: Option<Redis>,
    pub scaling: Scaling,
    pub shutdown: Shutdown,
    /// `maxUnavailable` of the PodDisruptionBudget; `None` when disabled.
    pub pod_disruption_budget: Option<IntOrString>,
    pub service_monitor: ServiceMonitorPlan,
    /// The server pods' NetworkPolicy, when asked for.
    pub network_policy: Option<ServerNetworkPolicy>,
    /// The Ingress to the client Service, when asked for.
    pub ingress: Option<Ingress>,
    pub features: Features,
    pub service_type: ServiceType,
    pub service_annotations: BTreeMap<String, String>,
    pub pod_template: PodTemplateOverrides,
    /// The CollabServer's own `env`, passed on as written.
    pub extra_env: Vec<EnvVar>,
    /// `name:resourceVersion` of every Secret the server reads, comma-separated (see
    /// [`labels::SECRET_VERSIONS_ANNOTATION`]): a change rolls the pods.
    pub secret_versions: String,
    pub notes: Vec<Note>,
}

impl ValidatedCollabServer {
    /// The in-cluster WebSocket URL of the client Service.
    pub fn endpoint(&self) -> String {
        format!(
            "ws://{}.{}.svc:{}",
            names::server(&self.name),
            self.namespace,
            self.port
        )
    }
}

/// Validates a CollabServer against what the cluster holds.
pub fn validate(
    server: &CollabServer,
    dereferenced: &Dereferenced,
    defaults: &OperatorDefaults,
) -> Result<ValidatedCollabServer, Error> {
    let name = server.metadata.name.clone().ok_or(Error::MissingName)?;
    if name.len() > names::MAX_INSTANCE_NAME_LENGTH {
        return Err(Error::NameTooLong { name });
    }
    let namespace = server.namespace().unwrap_or_else(|| "default".to_owned());
    let spec = &server.spec;
    let mut secrets = SecretResolver {
        dereferenced,
        namespace: &namespace,
        used: BTreeMap::new(),
    };
    let mut notes = Vec::new();

    let auth = validate_auth(spec.auth.as_ref(), &mut secrets)?;
    let features = validate_features(spec, &mut secrets)?;
    let storage = match &spec.database {
        Some(database) => validate_database(database, &mut secrets)?,
        None => {
            let sqlite = spec.sqlite.clone().unwrap_or_default();
            Storage::Sqlite {
                size: sqlite
                    .size
                    .unwrap_or_else(|| Quantity(DEFAULT_SQLITE_SIZE.to_owned())),
                storage_class_name: sqlite.storage_class_name,
            }
        }
    };
    let resources = spec
        .resources
        .clone()
        .unwrap_or_else(|| requests(&[("cpu", "100m"), ("memory", "128Mi")]));
    let redis = validate_redis(
        spec.redis.as_ref(),
        &name,
        defaults,
        dereferenced,
        &mut secrets,
    )?;
    let scaling = validate_scaling(server, &storage, redis.is_some(), &resources, &mut notes)?;

    let port = u16::try_from(spec.port)
        .ok()
        .filter(|port| *port != 0 && *port != server_contract::METRICS_PORT)
        .ok_or(Error::InvalidPort { port: spec.port })?;

    let grace = spec
        .termination_grace_period_seconds
        .unwrap_or(server_contract::DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    if grace < server_contract::MIN_TERMINATION_GRACE_PERIOD_SECONDS {
        return Err(Error::TerminationGracePeriodTooShort {
            seconds: grace,
            minimum: server_contract::MIN_TERMINATION_GRACE_PERIOD_SECONDS,
        });
    }

    for (index, variable) in spec.env.iter().enumerate() {
        if server_contract::env::MANAGED.contains(&variable.name.as_str()) {
            return Err(Error::ReservedEnvironmentVariable {
                index,
                name: variable.name.clone(),
            });
        }
        if let Some(reference) = variable
            .value_from
            .as_ref()
            .and_then(|source| source.secret_key_ref.as_ref())
        {
            let field = format!("spec.env[{index}].valueFrom.secretKeyRef");
            if reference.optional == Some(true) {
                secrets.hash_if_present(&reference.name, &reference.key);
            } else {
                secrets.require(&field, &reference.name, &reference.key)?;
            }
        }
    }

    let pod_template = spec.pod_template.clone().unwrap_or_default();
    for (field, keys) in [
        ("labels", pod_template.labels.keys()),
        ("annotations", pod_template.annotations.keys()),
    ] {
        if let Some(key) = keys.into_iter().find(|key| labels::is_reserved(key)) {
            return Err(Error::ReservedPodMetadata {
                field,
                key: key.clone(),
            });
        }
    }

    let pdb = spec.pod_disruption_budget.clone().unwrap_or_default();
    let pod_disruption_budget = if pdb.enabled {
        let max_unavailable = pdb.max_unavailable.unwrap_or(IntOrString::Int(1));
        if !valid_max_unavailable(&max_unavailable) {
            return Err(Error::InvalidPodDisruptionBudget {
                value: match max_unavailable {
                    IntOrString::Int(number) => number.to_string(),
                    IntOrString::String(text) => text,
                },
            });
        }
        Some(max_unavailable)
    } else {
        None
    };

    let service_monitor = match spec
        .monitoring
        .as_ref()
        .and_then(|monitoring| monitoring.service_monitor.as_ref())
    {
        Some(monitor) if monitor.enabled => {
            if dereferenced.service_monitor_crd {
                ServiceMonitorPlan::Create {
                    interval: monitor
                        .interval
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SCRAPE_INTERVAL.to_owned()),
                    labels: monitor.labels.clone(),
                }
            } else {
                notes.push(Note::ServiceMonitorCrdMissing);
                ServiceMonitorPlan::CrdMissing
            }
        }
        _ => ServiceMonitorPlan::Disabled,
    };

    let network_policy = spec
        .network_policy
        .as_ref()
        .filter(|policy| policy.enabled)
        .map(|policy| ServerNetworkPolicy {
            clients_from: policy.from.clone(),
            metrics_from: policy.metrics_from.clone(),
        });
    let ingress = match spec.ingress.as_ref().filter(|ingress| ingress.enabled) {
        Some(ingress) => {
            let host = ingress.host.trim();
            if host.is_empty() {
                return Err(Error::InvalidIngress {
                    problem: "host is required when the Ingress is enabled",
                });
            }
            let path = ingress.path.clone().unwrap_or_else(|| "/".to_owned());
            if !path.starts_with('/') {
                return Err(Error::InvalidIngress {
                    problem: "path must start with /",
                });
            }
            Some(Ingress {
                class_name: ingress.class_name.clone(),
                host: host.to_owned(),
                path,
                tls_secret_name: ingress.tls_secret_name.clone(),
                annotations: ingress.annotations.clone(),
            })
        }
        None => None,
    };

    let service = spec.service.clone().unwrap_or_default();
    // blockOwnerDeletion: a foreground deletion of the CollabServer waits for its children.
    // Setting it needs `update` on collabservers/finalizers where the API server enforces
    // owner-reference permissions (the chart grants it).
    let owner = server.controller_owner_ref(&()).map(|mut owner| {
        owner.block_owner_deletion = Some(true);
        owner
    });
    Ok(ValidatedCollabServer {
        owner,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| defaults.server_image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|policy| policy.as_str()),
        image_pull_secrets: spec.image_pull_secrets.clone(),
        resources,
        port,
        log_level: spec.log_level.clone(),
        log_format: spec.log_format.unwrap_or_default(),
        auth,
        storage,
        redis,
        scaling,
        shutdown: Shutdown {
            termination_grace_period_seconds: grace,
            server_timeout_seconds: server_contract::shutdown_timeout_for_grace_period(grace),
        },
        pod_disruption_budget,
        service_monitor,
        network_policy,
        ingress,
        features,
        service_type: service.type_.unwrap_or_default(),
        service_annotations: service.annotations,
        pod_template,
        extra_env: spec.env.clone(),
        secret_versions: secrets.versions(),
        notes,
        name,
        namespace,
    })
}

/// Looks up Secret keys, remembering every Secret used and the version the pods will see.
struct SecretResolver<'a> {
    dereferenced: &'a Dereferenced,
    namespace: &'a str,
    /// Secret name → its resourceVersion (or, for the managed Redis Secret, the password
    /// revision); `None` when unknown (outside a cluster).
    used: BTreeMap<String, Option<String>>,
}

impl SecretResolver<'_> {
    fn secret(&self, field: &str, name: &str) -> Result<&SecretContents, Error> {
        self.dereferenced
            .secret(name)
            .ok_or_else(|| Error::SecretNotFound {
                field: field.to_owned(),
                namespace: self.namespace.to_owned(),
                secret: name.to_owned(),
            })
    }

    /// A key that must exist.
    fn require(&mut self, field: &str, name: &str, key: &str) -> Result<SecretRef, Error> {
        let secret = self.secret(field, name)?;
        if !secret.contains(key) {
            return Err(Error::SecretKeyNotFound {
                field: field.to_owned(),
                secret: name.to_owned(),
                key: key.to_owned(),
                available: secret.keys(),
            });
        }
        Ok(self.record(name, key))
    }

    /// A key used only if present (the Secret itself must exist).
    fn optional(&mut self, name: &str, key: &str) -> Option<SecretRef> {
        let present = self
            .dereferenced
            .secret(name)
            .is_some_and(|secret| secret.contains(key));
        present.then(|| self.record(name, key))
    }

    fn hash_if_present(&mut self, name: &str, key: &str) {
        self.optional(name, key);
    }

    fn value(&self, reference: &SecretRef) -> Option<&[u8]> {
        self.dereferenced
            .secret(&reference.name)
            .and_then(|secret| secret.value(&reference.key))
            .map(|value| value.expose())
    }

    fn record(&mut self, name: &str, key: &str) -> SecretRef {
        let reference = SecretRef {
            name: name.to_owned(),
            key: key.to_owned(),
        };
        let version = self
            .dereferenced
            .secret(name)
            .and_then(SecretContents::resource_version)
            .map(str::to_owned);
        self.used.insert(name.to_owned(), version);
        reference
    }

    fn versions(&self) -> String {
        self.used
            .iter()
            .map(|(name, version)| format!("{name}:{}", version.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Lowercase hex of the first 8 bytes of a digest: short enough for an annotation.
pub fn hex(digest: &[u8]) -> String {
    digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn validate_auth(auth: Option<&AuthSpec>, secrets: &mut SecretResolver<'_>) -> Result<Auth, Error> {
    let default = AuthSpec::default();
    let auth = auth.unwrap_or(&default);
    let mut found = Vec::new();
    if auth.jwt_secret_ref.is_some() {
        found.push("jwtSecretRef");
    }
    if auth.jwks_url.is_some() {
        found.push("jwksUrl");
    }
    if auth.cognito.is_some() {
        found.push("cognito");
    }
    if found.len() > 1 {
        return Err(Error::ConflictingAuthentication { found });
    }
    if let (true, Some(method)) = (auth.allow_anonymous, found.first()) {
        return Err(Error::AnonymousWithAuthentication { method });
    }
    let keys = if let Some(reference) = &auth.jwt_secret_ref {
        TokenKeys::SharedSecret(secrets.require(
            "spec.auth.jwtSecretRef",
            &reference.name,
            &reference.key,
        )?)
    } else if let Some(url) = &auth.jwks_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(' ') {
            return Err(Error::InvalidJwksUrl { url: url.clone() });
        }
        TokenKeys::Jwks { url: url.clone() }
    } else if let Some(cognito) = &auth.cognito {
        if cognito.user_pool_id.trim().is_empty() {
            return Err(Error::InvalidCognito {
                field: "userPoolId",
            });
        }
        if cognito.region.trim().is_empty() {
            return Err(Error::InvalidCognito { field: "region" });
        }
        TokenKeys::Cognito {
            user_pool_id: cognito.user_pool_id.clone(),
            region: cognito.region.clone(),
        }
    } else if auth.allow_anonymous {
        if auth.issuer.is_some() || auth.audience.is_some() {
            return Err(Error::ClaimsWithoutAuthentication);
        }
        return Ok(Auth::Anonymous);
    } else {
        return Err(Error::NoAuthentication);
    };
    Ok(Auth::Tokens {
        keys,
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
    })
}

fn validate_database(
    database: &DatabaseSpec,
    secrets: &mut SecretResolver<'_>,
) -> Result<Storage, Error> {
    const FIELD: &str = "spec.database.secretRef";
    let name = &database.secret_ref.name;
    if let Some(mode) = &database.ssl_mode
        && !SSL_MODES.contains(&mode.as_str())
    {
        return Err(Error::InvalidSslMode {
            value: mode.clone(),
        });
    }
    let secret = secrets.secret(FIELD, name)?;
    let url_key = match &database.secret_ref.key {
        Some(key) => Some(key.clone()),
        None => DATABASE_URL_KEYS
            .iter()
            .find(|key| secret.contains(key))
            .map(|key| (*key).to_owned()),
    };
    let connection = if let Some(key) = url_key {
        let reference = secrets.require(FIELD, name, &key)?;
        if let Some(value) = secrets.value(&reference)
            && let Some(found) = unexpected_scheme(value, &["postgres", "postgresql"])
        {
            return Err(Error::UnsupportedDatabaseUrl {
                secret: name.clone(),
                key,
                found,
            });
        }
        PostgresConnection::Url(reference)
    } else if secret.contains("host") {
        PostgresConnection::Parts {
            host: secrets.require(FIELD, name, "host")?,
            port: secrets.optional(name, "port"),
            database: match (secrets.optional(name, "dbname"), &database.database_name) {
                (Some(_), Some(_)) => {
                    return Err(Error::DatabaseNameTwice {
                        secret: name.clone(),
                    });
                }
                (Some(reference), None) => DatabaseName::Secret(reference),
                (None, Some(literal)) => DatabaseName::Literal(literal.clone()),
                (None, None) => {
                    return Err(Error::DatabaseNameMissing {
                        secret: name.clone(),
                    });
                }
            },
            user: secrets.optional(name, "username"),
            password: secrets.optional(name, "password"),
        }
    } else {
        return Err(Error::DatabaseSecretWithoutConnection {
            secret: name.clone(),
            available: secret.keys(),
        });
    };
    Ok(Storage::Postgres {
        connection,
        ssl_mode: database.ssl_mode.clone(),
    })
}

fn validate_redis(
    redis: Option<&RedisSpec>,
    name: &str,
    defaults: &OperatorDefaults,
    dereferenced: &Dereferenced,
    secrets: &mut SecretResolver<'_>,
) -> Result<Option<Redis>, Error> {
    let Some(redis) = redis else {
        return Ok(None);
    };
    let managed = redis.managed.as_ref().filter(|managed| managed.enabled);
    match (&redis.external, managed) {
        (Some(_), Some(_)) => Err(Error::ConflictingRedis),
        (Some(external), None) => {
            let reference = secrets.require(
                "spec.redis.external.secretRef",
                &external.secret_ref.name,
                &external.secret_ref.key,
            )?;
            if let Some(value) = secrets.value(&reference)
                && let Some(found) = unexpected_scheme(value, &["redis", "rediss"])
            {
                return Err(Error::UnsupportedRedisUrl {
                    secret: reference.name,
                    key: reference.key,
                    found,
                });
            }
            Ok(Some(Redis::External { url: reference }))
        }
        (None, Some(managed)) => {
            let password = dereferenced
                .managed_redis_password
                .clone()
                .ok_or(Error::ManagedRedisUnavailable)?;
            let secret = names::redis(name);
            let url = SecretRef {
                name: secret.clone(),
                key: REDIS_URL_KEY.to_owned(),
            };
            // The Secret's resourceVersion changes when the operator writes it; the password
            // revision changes only with the password.
            secrets
                .used
                .insert(secret, Some(format!("rev-{}", password.revision())));
            Ok(Some(Redis::Managed(ManagedRedis {
                image: managed
                    .image
                    .clone()
                    .unwrap_or_else(|| defaults.redis_image.clone()),
                resources: managed
                    .resources
                    .clone()
                    .unwrap_or_else(|| requests(&[("cpu", "50m"), ("memory", "64Mi")])),
                password,
                url,
            })))
        }
        (None, None) => Ok(None),
    }
}

fn validate_scaling(
    server: &CollabServer,
    storage: &Storage,
    has_redis: bool,
    resources: &ResourceRequirements,
    notes: &mut Vec<Note>,
) -> Result<Scaling, Error> {
    let sqlite = matches!(storage, Storage::Sqlite { .. });
    match server
        .spec
        .autoscaling
        .as_ref()
        .filter(|autoscaling| autoscaling.enabled)
    {
        Some(autoscaling) => {
            let min_replicas = autoscaling.min_replicas.unwrap_or(DEFAULT_MIN_REPLICAS);
            let max_replicas = autoscaling.max_replicas.unwrap_or(DEFAULT_MAX_REPLICAS);
            let target = autoscaling
                .target_cpu_utilization_percentage
                .unwrap_or(DEFAULT_TARGET_CPU_PERCENT);
            let window = autoscaling
                .scale_down_stabilization_window_seconds
                .unwrap_or(DEFAULT_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS);
            let problem = if min_replicas < 1 {
                Some(format!(
                    "minReplicas must be at least 1 (got {min_replicas})"
                ))
            } else if max_replicas < min_replicas {
                Some(format!(
                    "maxReplicas ({max_replicas}) must not be below minReplicas ({min_replicas})"
                ))
            } else if !(1..=100).contains(&target) {
                Some(format!(
                    "targetCPUUtilizationPercentage must be 1-100 (got {target})"
                ))
            } else if !(0..=MAX_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS).contains(&window) {
                Some(format!(
                    "scaleDownStabilizationWindowSeconds must be 0-{MAX_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS} (got {window})"
                ))
            } else {
                autoscaling
                    .connections_per_pod
                    .filter(|connections| *connections < 1)
                    .map(|connections| {
                        format!("connectionsPerPod must be at least 1 (got {connections})")
                    })
            };
            if let Some(problem) = problem {
                return Err(Error::InvalidAutoscaling { problem });
            }
            if sqlite {
                return Err(Error::AutoscalingWithoutDatabase);
            }
            if max_replicas > 1 && !has_redis {
                return Err(Error::MultipleReplicasWithoutRedis {
                    replicas: max_replicas,
                });
            }
            let has_cpu_request = resources
                .requests
                .as_ref()
                .is_some_and(|requests| requests.contains_key("cpu"));
            if !has_cpu_request {
                return Err(Error::AutoscalingWithoutCpuRequest);
            }
            Ok(Scaling::Autoscaled {
                min_replicas,
                max_replicas,
                target_cpu_utilization_percentage: target,
                scale_down_stabilization_window_seconds: window,
                connections_per_pod: autoscaling.connections_per_pod,
            })
        }
        None => {
            // Omitted: as many as the storage and relay allow without a warning, so a minimal
            // CollabServer becomes Available, not Degraded.
            let requested = server.spec.replicas.unwrap_or(if !sqlite && has_redis {
                DEFAULT_REPLICAS
            } else {
                1
            });
            if requested < 0 {
                return Err(Error::InvalidReplicas {
                    replicas: requested,
                });
            }
            if sqlite && requested > 1 {
                notes.push(Note::ReplicasLimitedToOne { requested });
                return Ok(Scaling::Fixed { replicas: 1 });
            }
            if requested > 1 && !has_redis {
                return Err(Error::MultipleReplicasWithoutRedis {
                    replicas: requested,
                });
            }
            Ok(Scaling::Fixed {
                replicas: requested,
            })
        }
    }
}

/// `None` when `value` is a URL with one of `schemes`; otherwise what was found instead,
/// described without revealing the value.
fn unexpected_scheme(value: &[u8], schemes: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let scheme = text.trim().split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some(scheme) if schemes.contains(&scheme) => None,
        Some(scheme)
            if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Some(format!("scheme {scheme}://"))
        }
        _ => Some("not a URL".to_owned()),
    }
}

fn valid_max_unavailable(value: &IntOrString) -> bool {
    match value {
        IntOrString::Int(number) => *number >= 0,
        IntOrString::String(text) => text
            .strip_suffix('%')
            .and_then(|percent| percent.parse::<u8>().ok())
            .is_some_and(|percent| percent <= 100),
    }
}

fn requests(pairs: &[(&str, &str)]) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            pairs
                .iter()
                .map(|(name, quantity)| ((*name).to_owned(), Quantity((*quantity).to_owned())))
                .collect(),
        ),
        ..ResourceRequirements::default()
    }
}

/// Names of the Secret keys a validated server reads, for callers that need the set (the ECS
/// renderer maps each to an ARN).
pub fn secret_refs(server: &ValidatedCollabServer) -> BTreeSet<SecretRef> {
    crate::server_env::environment(server)
        .into_iter()
        .filter_map(|variable| match variable.value {
            crate::server_env::EnvValue::Secret(reference) => Some(reference),
            crate::server_env::EnvValue::Literal(_) => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
