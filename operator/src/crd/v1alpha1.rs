//! `collab.zedi.dev/v1alpha1` `CollabServer`: the spec a person writes and the status the
//! operator reports. Every field carries a doc comment, which becomes its description in the
//! generated CRD schema (`collab-operator crd`) and in `docs/operator.md`.
//!
//! Defaults that matter to behaviour are resolved in [`crate::validate`], not here:
//! the same spec is also read outside a cluster (ECS rendering), where no API server applies
//! schema defaults.

// kube's repeated `printcolumn(type_ = ..)` attributes trip this lint.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
        TopologySpreadConstraint,
    },
    apimachinery::pkg::{
        api::resource::Quantity, apis::meta::v1::Condition, util::intstr::IntOrString,
    },
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Replicas when `spec.replicas` is omitted.
pub const DEFAULT_REPLICAS: i32 = 2;

/// Desired state of a CollabServer: a Deployment of collab-server with its ConfigMap, Services,
/// PodDisruptionBudget and, optionally, a HorizontalPodAutoscaler, a ServiceMonitor and a
/// managed Redis.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "collab.zedi.dev",
    version = "v1alpha1",
    kind = "CollabServer",
    namespaced,
    shortname = "collab",
    status = "CollabServerStatus",
    derive = "PartialEq",
    doc = "A collab-server deployment (Hocuspocus- and y-websocket-compatible Yjs sync server) managed by collab-operator.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "pods the Deployment runs"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "pods passing /ready"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].reason",
        description = "reason of the Available condition"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        description = "in-cluster WebSocket URL",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CollabServerSpec {
    /// Number of collab-server pods (default 2). Ignored while `autoscaling.enabled` is true.
    /// More than one needs `redis`; without `database` (embedded SQLite) the operator runs one.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Server image. Default: the collab-server image of the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Image pull policy of the server container (Kubernetes' default when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets holding registry credentials for the server and Redis images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Compute resources of the server container. Default: requests of 100m CPU and 128Mi
    /// memory, no limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Port for WebSocket clients, `/health` and `/ready` (default 1234, the server's `PORT`).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Log filter of the server (`LOG_LEVEL`, RUST_LOG syntax), e.g. `info` or
    /// `collab_server=debug`. Default: the server's own (`info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Log format of the server (`LOG_FORMAT`): `json` (default) or `plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// How clients' tokens are checked. Exactly one of `jwtSecretRef`, `jwksUrl` and `cognito`,
    /// or none with `allowAnonymous: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// PostgreSQL for documents. Omitted: the server stores documents in its embedded SQLite
    /// database on a PersistentVolumeClaim (see `sqlite`), and runs as a single replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// The volume for the embedded SQLite database; used only when `database` is omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSpec>,

    /// Redis that relays updates and awareness between replicas: `external` or `managed`.
    /// Required for more than one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,

    /// Horizontal pod autoscaling on CPU (an `autoscaling/v2` HorizontalPodAutoscaler); while
    /// enabled, the operator no longer sets the Deployment's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// PodDisruptionBudget for the server pods. Omitted: enabled with `maxUnavailable: 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,

    /// Prometheus Operator integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// The client-facing Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// Additions to the server pods: metadata and scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// Extra environment variables for the server container (for example
    /// `COLLAB_SERVER_MAX_CONNECTIONS`). Variables the operator sets itself are rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Seconds a pod gets to stop: a preStop pause of 5 s while endpoints drop the pod, then
    /// the server stores every document and closes sockets within the remainder less 5 s.
    /// Default 35 (the server's 25 s shutdown timeout); at least 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,

    /// While true, the operator changes nothing (children are left as they are) and reports
    /// `Progressing=False` with reason `Paused`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

fn default_replicas() -> i32 {
    DEFAULT_REPLICAS
}

fn default_port() -> i32 {
    i32::from(crate::server_contract::DEFAULT_PORT)
}

fn default_true() -> bool {
    true
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Plain,
}

/// A key of a Secret in the CollabServer's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// Token checking.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// HS256: a Secret key holding the shared secret (`JWT_SECRET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<SecretKeyRef>,

    /// RS256/ES256: an `https://` URL of the JSON Web Key Set (`JWKS_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,

    /// Amazon Cognito user pool: gives the JWKS URL and the issuer, and checks `token_use`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cognito: Option<CognitoSpec>,

    /// Required `iss` claim (`JWT_ISSUER`). With `cognito`, the pool's issuer by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,

    /// Required audience (`JWT_AUDIENCE`): `aud`, or Cognito access tokens' `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,

    /// Accept clients without tokens: every client may read and write every document. Must be
    /// true when no token check is configured, so a server is never deployed open by accident.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_anonymous: bool,
}

/// An Amazon Cognito user pool.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CognitoSpec {
    /// User pool id, e.g. `ap-northeast-1_AbCdEf123` (`COGNITO_USER_POOL_ID`).
    pub user_pool_id: String,
    /// AWS region of the pool, e.g. `ap-northeast-1` (`COGNITO_REGION`).
    pub region: String,
}

/// PostgreSQL connection, read from a Secret.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The Secret with the connection settings.
    pub secret_ref: DatabaseSecretRef,

    /// libpq sslmode when the Secret gives host/port/dbname/username/password
    /// (`DATABASE_SSLMODE`): disable, allow, prefer, require, verify-ca or verify-full.
    /// Default: the server's (`prefer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
}

/// A Secret with PostgreSQL connection settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct DatabaseSecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Key holding a `postgres://` or `postgresql://` URL. Omitted: the first of
    /// `DATABASE_URL` and `uri` (a CloudNativePG application Secret) that exists, else the
    /// keys `host`, `port`, `dbname`, `username` and `password` (only `host` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The embedded SQLite database's volume.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqliteSpec {
    /// Size of the PersistentVolumeClaim (default `1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// StorageClass of the claim (the cluster's default when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Redis for the relay between replicas: set exactly one of `external` and `managed`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// A Redis the operator does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedisSpec>,
    /// A Redis Deployment and Service run by the operator, with a generated password kept in
    /// the Secret `<name>-redis` (keys `password` and `url`). Nothing is persisted: Redis only
    /// relays messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedisSpec>,
}

/// An external Redis.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedisSpec {
    /// A Secret key holding the `redis://` or `rediss://` (TLS) URL (`REDIS_URL`), password
    /// included.
    pub secret_ref: SecretKeyRef,
}

/// A Redis run by the operator.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedisSpec {
    /// Run it (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Redis image (default: the operator's `--redis-image`, `redis:7.4-alpine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the Redis container (default: requests of 50m CPU, 64Mi memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedRedisSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            resources: None,
        }
    }
}

/// CPU-based horizontal autoscaling.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Create the HorizontalPodAutoscaler (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Fewest replicas (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Most replicas (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
    /// Average CPU utilization to aim for, in percent of the CPU request (default 70).
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
}

/// PodDisruptionBudget settings.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Create the PodDisruptionBudget (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pods that voluntary disruptions (drains) may take down at once: a number or a
    /// percentage such as `25%` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: None,
        }
    }
}

/// Monitoring integrations.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A Prometheus Operator ServiceMonitor for the server's metrics port. Created only when
    /// the ServiceMonitor CRD (`monitoring.coreos.com/v1`) exists; otherwise a condition says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
}

/// ServiceMonitor settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Labels of the ServiceMonitor, e.g. `release: kube-prometheus-stack`, which
    /// kube-prometheus-stack's Prometheus selects on by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The client-facing Service.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type (default `ClusterIP`). The metrics port is never on this Service: it is on
    /// `<name>-metrics`, which is always `ClusterIP`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Annotations of the Service (load balancer settings, for example).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

// No type-level doc comment: it would replace the field's description in the schema.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ServiceType {
    /// Reachable inside the cluster.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through the cloud's load balancer.
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Additions to the server pod template.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod annotations. Keys under `collab.zedi.dev/` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra pod labels. The operator's `app.kubernetes.io/*` selector labels are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Node selector of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints. Omitted: pods spread over nodes where possible
    /// (`kubernetes.io/hostname`, `ScheduleAnyway`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CollabServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of the server Deployment.
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probe (`/ready`).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the server pods (for the scale subresource and autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// In-cluster WebSocket URL clients connect to, e.g. `ws://collab.default.svc:1234`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Hash of the objects last applied; changes whenever the operator changes a child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hash: Option<String>,
    /// `Available`, `Progressing` and `Degraded`, with reasons a person can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
