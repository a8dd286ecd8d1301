//! Shared by the integration tests: load CollabServer cases (CollabServers plus the Secrets
//! they refer to) and build their objects.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use collab_operator::controller::build::{self, Prepared, Resources};
use collab_operator::crd::CollabServer;
use collab_operator::dereferenced::{Dereferenced, RedisPassword};
use collab_operator::validate::{self, OperatorDefaults, ValidatedCollabServer};
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

/// The uid golden CollabServers get, so children show their owner reference.
pub const UID: &str = "11111111-2222-3333-4444-555555555555";
/// The managed Redis password of golden cases.
pub const REDIS_PASSWORD: &str = "GoldenRedisPassword0123456789ab";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One golden case: files whose documents together hold the CollabServer and its Secrets.
pub struct Case {
    pub name: &'static str,
    pub files: &'static [&'static str],
    pub service_monitor_crd: bool,
}

pub const CASES: &[Case] = &[
    Case {
        name: "collabserver-kind",
        files: &["deploy/examples/collabserver-kind.yaml"],
        service_monitor_crd: false,
    },
    Case {
        name: "collabserver",
        files: &[
            "deploy/examples/collabserver.yaml",
            "operator/tests/fixtures/collabserver-secrets.yaml",
        ],
        service_monitor_crd: true,
    },
    Case {
        name: "jwks-fixed-replicas",
        files: &["operator/tests/fixtures/jwks-fixed-replicas.yaml"],
        service_monitor_crd: false,
    },
];

pub struct Loaded {
    pub server: CollabServer,
    pub dereferenced: Dereferenced,
}

pub fn load(case: &Case) -> Loaded {
    let mut server = None;
    let mut dereferenced = Dereferenced::default();
    for file in case.files {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document).unwrap();
            match value["kind"].as_str() {
                Some("CollabServer") => {
                    let mut parsed: CollabServer = serde_yaml::from_value(value).unwrap();
                    parsed.metadata.uid = Some(UID.to_owned());
                    server = Some(parsed);
                }
                Some("Secret") => {
                    let secret: Secret = serde_yaml::from_value(value).unwrap();
                    let name = secret.metadata.name.clone().unwrap();
                    let mut data: Vec<(String, Vec<u8>)> = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(key, value)| (key, value.0))
                        .collect();
                    data.extend(
                        secret
                            .string_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(key, value)| (key, value.into_bytes())),
                    );
                    dereferenced = dereferenced.with_secret(&name, data);
                }
                other => panic!("{file}: unexpected kind {other:?}"),
            }
        }
    }
    let server = server.unwrap_or_else(|| panic!("{}: no CollabServer", case.name));
    let wants_redis = server
        .spec
        .redis
        .as_ref()
        .is_some_and(|redis| redis.managed.is_some());
    if wants_redis {
        dereferenced.managed_redis_password =
            RedisPassword::stored(REDIS_PASSWORD.as_bytes(), Some("golden"));
    }
    dereferenced.service_monitor_crd = case.service_monitor_crd;
    Loaded {
        server,
        dereferenced,
    }
}

pub fn validated(case: &Case) -> ValidatedCollabServer {
    let loaded = load(case);
    validate::validate(
        &loaded.server,
        &loaded.dereferenced,
        &OperatorDefaults::default(),
    )
    .unwrap_or_else(|error| panic!("{}: {error}", case.name))
}

pub fn built(case: &Case) -> Resources<Prepared> {
    build::build(&validated(case))
}

/// The collab-server Deployment a case builds, as JSON.
pub fn server_deployment(case: &Case) -> serde_json::Value {
    serde_json::to_value(&built(case).deployment).unwrap()
}

/// Compares `actual` with the committed file, or rewrites it when `COLLAB_OPERATOR_BLESS=1`.
pub fn assert_matches_file(path: &Path, actual: &str) {
    if std::env::var_os("COLLAB_OPERATOR_BLESS").is_some_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} is stale; regenerate with `COLLAB_OPERATOR_BLESS=1 cargo test -p collab-operator` and review the diff.\n--- first difference near line {} ---",
        path.display(),
        first_difference(&expected, actual)
    );
}

fn first_difference(expected: &str, actual: &str) -> usize {
    expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()))
        + 1
}
