//! The operator's half of the server contract, checked against the server's own parser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use collab_operator::server_contract::{self, env};
use collab_server::config::{AuthConfig, Config, StorageConfig};
use serde_json::Value;

use crate::common::{self, CASES};

/// What a Secret-backed variable is replaced with: a value of the right shape.
pub fn placeholder(name: &str) -> String {
    match name {
        env::DATABASE_URL => "postgres://user:password@db:5432/app".to_owned(),
        env::DATABASE_PORT => "5432".to_owned(),
        env::REDIS_URL => "redis://:password@redis:6379".to_owned(),
        _ => "placeholder".to_owned(),
    }
}

/// The environment the server container gets: its ConfigMap (`envFrom`), then `env`, later
/// entries winning as in Kubernetes. Secret references become placeholders.
fn container_environment(objects: &[Value], name: &str) -> Vec<(String, String)> {
    let find = |kind: &str, object_name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == object_name)
            .unwrap_or_else(|| panic!("no {kind} {object_name}"))
    };
    let deployment = find("Deployment", name);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |key: String, value: String| {
        vars.retain(|(existing, _)| *existing != key);
        vars.push((key, value));
    };
    // The whole environment is in the pod template: nothing comes from a ConfigMap.
    assert!(container.get("envFrom").is_none(), "{container}");
    for variable in container["env"].as_array().into_iter().flatten() {
        let key = variable["name"].as_str().unwrap().to_owned();
        let value = match variable["value"].as_str() {
            // The kubelet turns `$$` into `$` (and would expand `$(NAME)`).
            Some(value) => value.replace("$$", "$"),
            None => {
                assert!(
                    variable["valueFrom"]["secretKeyRef"].is_object(),
                    "{key} comes from a Secret or a literal"
                );
                if key.starts_with("COLLAB_SERVER_") && key.ends_with("_SECS") {
                    "60".to_owned()
                } else {
                    placeholder(&key)
                }
            }
        };
        set(key, value);
    }
    vars
}

#[test]
fn the_container_environment_parses_as_collab_server_configuration() {
    for case in CASES {
        let server = common::validated(case);
        let objects = common::built(case).to_objects();
        let vars = container_environment(&objects, &server.name);
        let config = Config::from_env(vars.clone())
            .unwrap_or_else(|error| panic!("{}: {error} in {vars:?}", case.name));

        assert_eq!(config.port, server.port, "{}", case.name);
        assert_eq!(
            config.metrics_port,
            Some(server_contract::METRICS_PORT),
            "{}",
            case.name
        );
        assert_eq!(
            config.shutdown_timeout_secs as i64, server.shutdown.server_timeout_seconds,
            "{}",
            case.name
        );
        let storage = config.storage().unwrap();
        match case.name {
            "collabserver-kind" => assert_eq!(
                storage,
                StorageConfig::Sqlite {
                    path: format!("{}/collab.db", server_contract::DATA_DIR).into()
                }
            ),
            _ => assert!(
                matches!(storage, StorageConfig::Postgres { .. }),
                "{}: {storage:?}",
                case.name
            ),
        }
        let auth = config.auth().unwrap();
        assert!(
            matches!(auth, AuthConfig::Jwt { .. }),
            "{}: tokens are checked ({auth:?})",
            case.name
        );
        if case.name == "collabserver" {
            let AuthConfig::Jwt {
                cognito, audience, ..
            } = auth
            else {
                unreachable!()
            };
            assert!(cognito);
            assert_eq!(audience.as_deref(), Some("3n4b5c6d7e8f9g0h1i2j3k4l5m"));
        }
        assert!(
            config.redis_url.is_some(),
            "{}: REDIS_URL is set",
            case.name
        );
        // Every server feature a CollabServer can turn on parses as the server reads it.
        config.api_secrets().unwrap();
        let webhook = config.webhook().unwrap();
        if case.name == "jwks-fixed-replicas" {
            assert!(config.api_admin_only, "api.adminOnly");
            let webhook = webhook.expect("spec.webhook");
            assert_eq!(webhook.url.as_str(), "https://hooks.example/collab");
            assert!(webhook.events.change && webhook.events.create && !webhook.events.connect);
            assert_eq!(config.demo, Some(false));
            assert_eq!(config.max_document_bytes, 67_108_864);
            assert_eq!(config.max_connections_per_ip, 100);
            assert_eq!(config.trusted_proxies.len(), 1);
        }
    }
}

#[test]
fn the_container_ports_and_probes_match_the_server() {
    for case in CASES {
        let server = common::validated(case);
        let deployment = common::server_deployment(case);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let port = |name: &str| {
            container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|port| port["name"] == name)
                .unwrap()["containerPort"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(port("http"), u64::from(server.port));
        assert_eq!(port("metrics"), u64::from(server_contract::METRICS_PORT));
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
        assert_eq!(container["startupProbe"]["httpGet"]["path"], "/health");
    }
}

#[test]
fn every_variable_the_operator_manages_is_one_the_server_knows() {
    for name in env::MANAGED {
        let value = match *name {
            env::PORT | env::METRICS_PORT | env::DATABASE_PORT => "1".to_owned(),
            env::SHUTDOWN_TIMEOUT_SECS => "10".to_owned(),
            env::HOST => "0.0.0.0".to_owned(),
            env::LOG_FORMAT => "json".to_owned(),
            other => placeholder(other),
        };
        Config::from_env([(*name, value.as_str())])
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}

#[test]
fn the_server_defaults_match_the_contract() {
    let config = Config::from_env(Vec::<(String, String)>::new()).unwrap();
    assert_eq!(config.port, server_contract::DEFAULT_PORT);
    assert_eq!(
        config.shutdown_timeout_secs as i64,
        server_contract::DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
    );
    assert_eq!(
        config.keepalive_secs as i64,
        server_contract::DEFAULT_KEEPALIVE_SECONDS
    );
    Config::from_env([(env::KEEPALIVE_SECS, "10")]).unwrap();
}

#[test]
fn the_ssl_modes_the_crd_allows_are_the_ones_the_server_accepts() {
    assert_eq!(
        collab_operator::crd::v1alpha1::SSL_MODES,
        collab_server::config::SSL_MODES
    );
}
