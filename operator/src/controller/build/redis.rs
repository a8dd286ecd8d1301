//! The managed Redis: a Secret with the generated password, the URL the server gets and the
//! `redis.conf` Redis reads it from (never on a command line, where `/proc/*/cmdline` shows
//! it), its own ServiceAccount, a NetworkPolicy that admits only this CollabServer's server
//! pods, a single-pod Deployment (nothing persisted: Redis only relays messages) and its
//! Service.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, KeyToPath,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret,
            SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
            TCPSocketAction, Volume, VolumeMount,
        },
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
            NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{RedisResources, metadata};
use crate::dereferenced::{REDIS_PASSWORD_KEY, REDIS_URL_KEY};
use crate::labels::{self, Component};
use crate::names;
use crate::validate::{ManagedRedis, Redis, ValidatedCollabServer};

/// Redis' port.
pub const REDIS_PORT: i32 = 6379;
/// Key of the managed Redis Secret with the config file Redis starts from.
pub const REDIS_CONFIG_KEY: &str = "redis.conf";
const REDIS_CONFIG_DIR: &str = "/etc/redis";
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
    // `save ""` and no append-only file: nothing to persist.
    let config = format!(
        "port {REDIS_PORT}\nbind * -::*\nrequirepass {}\nsave \"\"\nappendonly no\n",
        managed.password.expose()
    );
    let mut secret_metadata = metadata(server, name.clone(), Component::Redis);
    secret_metadata.annotations = Some(BTreeMap::from([(
        labels::PASSWORD_REVISION_ANNOTATION.to_owned(),
        managed.password.revision().to_owned(),
    )]));
    let secret = Secret {
        metadata: secret_metadata,
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                REDIS_PASSWORD_KEY.to_owned(),
                ByteString(managed.password.expose().as_bytes().to_vec()),
            ),
            (REDIS_URL_KEY.to_owned(), ByteString(url.into_bytes())),
            (REDIS_CONFIG_KEY.to_owned(), ByteString(config.into_bytes())),
        ])),
        ..Secret::default()
    };
    Some(RedisResources {
        secret,
        service_account: ServiceAccount {
            metadata: metadata(server, name.clone(), Component::Redis),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        },
        network_policy: network_policy(server, &name),
        service: service(server, &name),
        deployment: deployment(server, managed, &name),
    })
}

/// Only this CollabServer's server pods reach Redis, and only on its port.
fn network_policy(server: &ValidatedCollabServer, name: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: metadata(server, name.to_owned(), Component::Redis),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&server.name, Component::Redis)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(labels::selector(&server.name, Component::Server)),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(REDIS_PORT)),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
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
        // The password is in the mounted config file: neither the pod spec, the environment
        // nor the command line holds it.
        command: Some(vec![
            "redis-server".to_owned(),
            format!("{REDIS_CONFIG_DIR}/{REDIS_CONFIG_KEY}"),
        ]),
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
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".to_owned(),
                mount_path: "/data".to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".to_owned(),
                mount_path: REDIS_CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
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
                        labels::PASSWORD_REVISION_ANNOTATION.to_owned(),
                        managed.password.revision().to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.to_owned()),
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
                    volumes: Some(vec![
                        Volume {
                            name: "data".to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        },
                        Volume {
                            name: "config".to_owned(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(name.to_owned()),
                                items: Some(vec![KeyToPath {
                                    key: REDIS_CONFIG_KEY.to_owned(),
                                    path: REDIS_CONFIG_KEY.to_owned(),
                                    mode: None,
                                }]),
                                // Readable by the redis group (fsGroup) only.
                                default_mode: Some(0o440),
                                optional: None,
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
