//! The collab-server Deployment: probes on the server's `/ready` and `/health`, a preStop
//! pause and a grace period sized for the server's shutdown (see [`server_contract`]), the
//! config hash on the pod template, and a locked-down security context.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
            HTTPGetAction, Lifecycle, LifecycleHandler, PersistentVolumeClaimVolumeSource,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
            SecurityContext, SleepAction, TopologySpreadConstraint, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::metadata;
use crate::labels::{self, Component};
use crate::names;
use crate::server_contract::{self, CONTAINER_NAME, HTTP_PORT_NAME, METRICS_PORT_NAME};
use crate::server_env::{self, EnvValue};
use crate::validate::{Scaling, Storage, ValidatedCollabServer};

const DATA_VOLUME: &str = "data";
const TMP_VOLUME: &str = "tmp";

/// Replicas the operator sets (under its replicas field manager): `None` while autoscaled.
pub fn replicas(server: &ValidatedCollabServer) -> Option<i32> {
    match server.scaling {
        Scaling::Fixed { replicas } => Some(replicas),
        Scaling::Autoscaled { .. } => None,
    }
}

pub fn deployment(server: &ValidatedCollabServer) -> Deployment {
    let sqlite = matches!(server.storage, Storage::Sqlite { .. });
    let selector = labels::selector(&server.name, Component::Server);

    let mut pod_labels = server.pod_template.labels.clone();
    pod_labels.extend(labels::labels(&server.name, Component::Server));
    let mut pod_annotations = server.pod_template.annotations.clone();
    pod_annotations.insert(
        labels::SECRET_VERSIONS_ANNOTATION.to_owned(),
        server.secret_versions.clone(),
    );

    Deployment {
        metadata: metadata(server, names::server(&server.name), Component::Server),
        spec: Some(DeploymentSpec {
            replicas: None,
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            // SQLite: one pod owns the volume and the database file; never two at once.
            strategy: Some(if sqlite {
                DeploymentStrategy {
                    type_: Some("Recreate".to_owned()),
                    ..DeploymentStrategy::default()
                }
            } else {
                DeploymentStrategy {
                    type_: Some("RollingUpdate".to_owned()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(1)),
                        max_unavailable: Some(IntOrString::Int(0)),
                    }),
                }
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(server, sqlite, selector)),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn pod_spec(
    server: &ValidatedCollabServer,
    sqlite: bool,
    selector: BTreeMap<String, String>,
) -> PodSpec {
    let overrides = &server.pod_template;
    let topology_spread_constraints = if !overrides.topology_spread_constraints.is_empty() {
        Some(overrides.topology_spread_constraints.clone())
    } else if sqlite {
        None
    } else {
        // Across zones and across nodes, where the cluster has them: losing one zone or one
        // node drops only that share of the sockets.
        Some(
            ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
                .map(|topology_key| TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: topology_key.to_owned(),
                    when_unsatisfiable: "ScheduleAnyway".to_owned(),
                    label_selector: Some(LabelSelector {
                        match_labels: Some(selector.clone()),
                        ..LabelSelector::default()
                    }),
                    ..TopologySpreadConstraint::default()
                })
                .to_vec(),
        )
    };

    let mut volumes = vec![Volume {
        name: TMP_VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    if sqlite {
        volumes.push(Volume {
            name: DATA_VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::data_volume(&server.name),
                read_only: None,
            }),
            ..Volume::default()
        });
    }

    PodSpec {
        service_account_name: Some(names::server(&server.name)),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(server.shutdown.termination_grace_period_seconds),
        image_pull_secrets: non_empty(server.image_pull_secrets.clone()),
        node_selector: (!overrides.node_selector.is_empty())
            .then(|| overrides.node_selector.clone()),
        tolerations: non_empty(overrides.tolerations.clone()),
        affinity: overrides.affinity.clone(),
        topology_spread_constraints,
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(server_contract::SERVER_USER_ID),
            run_as_group: Some(server_contract::SERVER_USER_ID),
            fs_group: Some(server_contract::SERVER_USER_ID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container(server, sqlite)],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

fn container(server: &ValidatedCollabServer, sqlite: bool) -> Container {
    // Literal values in the pod template (not a ConfigMap read through envFrom): the
    // configuration is part of the ReplicaSet, so a rollback or a failed apply never pairs a
    // revision with another revision's configuration.
    let mut env: Vec<EnvVar> = server_env::environment(server)
        .into_iter()
        .map(|variable| match variable.value {
            EnvValue::Literal(value) => EnvVar {
                name: variable.name.to_owned(),
                // `$(NAME)` in a value is expanded by the kubelet; `$$` stands for `$`.
                value: Some(value.replace('$', "$$")),
                ..EnvVar::default()
            },
            EnvValue::Secret(reference) => EnvVar {
                name: variable.name.to_owned(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: reference.name,
                        key: reference.key,
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
        })
        .collect();
    env.extend(server.extra_env.iter().cloned());

    let mut mounts = vec![VolumeMount {
        name: TMP_VOLUME.to_owned(),
        mount_path: "/tmp".to_owned(),
        ..VolumeMount::default()
    }];
    if sqlite {
        mounts.push(VolumeMount {
            name: DATA_VOLUME.to_owned(),
            mount_path: server_contract::DATA_DIR.to_owned(),
            ..VolumeMount::default()
        });
    }

    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(server.image.clone()),
        image_pull_policy: server.image_pull_policy.map(str::to_owned),
        ports: Some(vec![
            container_port(HTTP_PORT_NAME, i32::from(server.port)),
            container_port(METRICS_PORT_NAME, i32::from(server_contract::METRICS_PORT)),
        ]),
        env: non_empty(env),
        resources: Some(server.resources.clone()),
        // Migrations run before the listener opens: give start-up up to two minutes.
        startup_probe: Some(http_probe(
            server_contract::HEALTH_PATH,
            server_contract::STARTUP_PROBE_PERIOD_SECONDS,
            server_contract::STARTUP_PROBE_FAILURES,
        )),
        liveness_probe: Some(http_probe(server_contract::HEALTH_PATH, 10, 3)),
        readiness_probe: Some(http_probe(server_contract::READY_PATH, 5, 2)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: server_contract::PRE_STOP_SLEEP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

fn container_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(HTTP_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
