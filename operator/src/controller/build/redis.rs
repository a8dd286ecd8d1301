//! The managed Redis: a Secret with the generated password and the URL the server gets, a
//! single-pod Deployment (nothing persisted: Redis only relays messages) and its Service.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret,
            SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction,
            Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use sha2::{Digest, Sha256};

use super::{RedisResources, metadata};
use crate::dereferenced::{REDIS_PASSWORD_KEY, REDIS_URL_KEY};
use crate::labels::{self, Component};
use crate::names;
use crate::validate::{ManagedRedis, Redis, ValidatedCollabServer, hex};

/// Redis' port.
pub const REDIS_PORT: i32 = 6379;
/// The official image's `redis` user.
const REDIS_USER_ID: i64 = 999;

pub fn redis(server: &ValidatedCollabServer) -> Option<RedisResources> {
    let Some(Redis::Managed(managed)) = &server.redis else {
        return None;
    };
    let name = names::redis(&server.name);
    let url = format!(
        "redis://:{}@{name}.{}.svc:{REDIS_PORT}",
        managed.password.expose(),
        server.namespace
    );
    let secret = Secret {
        metadata: metadata(server, name.clone(), Component::Redis),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                REDIS_PASSWORD_KEY.to_owned(),
                ByteString(managed.password.expose().as_bytes().to_vec()),
            ),
            (REDIS_URL_KEY.to_owned(), ByteString(url.into_bytes())),
        ])),
        ..Secret::default()
    };
    Some(RedisResources {
        secret,
        service: service(server, &name),
        deployment: deployment(server, managed, &name),
    })
}

fn service(server: &ValidatedCollabServer, name: &str) -> Service {
    Service {
        metadata: metadata(server, name.to_owned(), Component::Redis),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::selector(&server.name, Component::Redis)),
            ports: Some(vec![ServicePort {
                name: Some("redis".to_owned()),
                port: REDIS_PORT,
                target_port: Some(IntOrString::String("redis".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn deployment(server: &ValidatedCollabServer, managed: &ManagedRedis, name: &str) -> Deployment {
    let selector = labels::selector(&server.name, Component::Redis);
    let password_hash = hex(&Sha256::digest(managed.password.expose().as_bytes()));
    let probe = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("redis".to_owned()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let container = Container {
        name: "redis".to_owned(),
        image: Some(managed.image.clone()),
        command: Some(vec!["redis-server".to_owned()]),
        // The password comes from the environment so it is not in the pod spec; `--save ""`
        // turns snapshots off (append-only is off by default): nothing to persist.
        args: Some(
            ["--requirepass", "$(REDIS_PASSWORD)", "--save", ""]
                .map(str::to_owned)
                .to_vec(),
        ),
        env: Some(vec![EnvVar {
            name: "REDIS_PASSWORD".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.to_owned(),
                    key: REDIS_PASSWORD_KEY.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some("redis".to_owned()),
            container_port: REDIS_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        resources: Some(managed.resources.clone()),
        readiness_probe: Some(probe.clone()),
        liveness_probe: Some(probe),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".to_owned(),
            mount_path: "/data".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    Deployment {
        metadata: metadata(server, name.to_owned(), Component::Redis),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(&server.name, Component::Redis)),
                    annotations: Some(BTreeMap::from([(
                        labels::CONFIG_HASH_ANNOTATION.to_owned(),
                        password_hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names::server(&server.name)),
                    automount_service_account_token: Some(false),
                    image_pull_secrets: (!server.image_pull_secrets.is_empty())
                        .then(|| server.image_pull_secrets.clone()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(REDIS_USER_ID),
                        run_as_group: Some(REDIS_USER_ID),
                        fs_group: Some(REDIS_USER_ID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "data".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
