//! `collab-operator ecs render` end to end on files: every case's output against its committed
//! files (the zedi-dev deployment in `deploy/ecs/zedi-dev/`, the others in
//! `operator/tests/golden/ecs/`), and the environment a task gets parsed by the server.
//! `tests/deploy/test_ecs.py` validates the same files against botocore's ECS model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use collab_operator::ecs::{self, EcsOptions, Rendered};
use collab_operator::server_contract;
use collab_server::config::{AuthConfig, Config, StorageConfig};
use serde_json::Value;

use crate::common;
use crate::server_contract::placeholder;

struct Case {
    name: &'static str,
    collab_server: &'static str,
    options: &'static str,
    /// Where the rendered files are committed.
    out: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "zedi-dev",
        collab_server: "deploy/ecs/zedi-dev/collabserver.yaml",
        options: "deploy/ecs/zedi-dev/ecs.yaml",
        out: "deploy/ecs/zedi-dev",
    },
    Case {
        name: "collabserver",
        collab_server: "deploy/examples/collabserver.yaml",
        options: "operator/tests/fixtures/ecs/collabserver/ecs.yaml",
        out: "operator/tests/golden/ecs/collabserver",
    },
    Case {
        name: "hs256-ssm-parts",
        collab_server: "operator/tests/fixtures/ecs/hs256-ssm-parts/collabserver.yaml",
        options: "operator/tests/fixtures/ecs/hs256-ssm-parts/ecs.yaml",
        out: "operator/tests/golden/ecs/hs256-ssm-parts",
    },
];

fn read(path: &str) -> String {
    std::fs::read_to_string(common::root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn render(case: &Case) -> Rendered {
    let server = ecs::parse_collab_server(&read(case.collab_server))
        .unwrap_or_else(|error| panic!("{}: {error}", case.name));
    let options = EcsOptions::from_yaml(&read(case.options))
        .unwrap_or_else(|error| panic!("{}: {error}", case.name));
    ecs::render(&server, &options).unwrap_or_else(|error| panic!("{}: {error}", case.name))
}

fn task_definition(case: &Case) -> Value {
    serde_json::to_value(render(case).task_definition).unwrap()
}

const FORMATS: [ecs::Format; 2] = [ecs::Format::Cli, ecs::Format::Terraform];

#[test]
fn rendered_files_match_the_committed_ones() {
    for case in CASES {
        let out: PathBuf = common::root().join(case.out);
        for format in FORMATS {
            for (name, contents) in render(case).files(format).unwrap() {
                common::assert_matches_file(&out.join(name), &contents);
            }
        }
    }
}

/// A file the renderer no longer writes (say, a scaling policy after autoscaling was turned
/// off) must not linger next to the others.
#[test]
fn the_committed_directories_hold_only_rendered_files_and_inputs() {
    for case in CASES {
        let rendered = render(case);
        let mut expected: std::collections::BTreeSet<String> = FORMATS
            .iter()
            .flat_map(|format| rendered.files(*format).unwrap())
            .map(|(name, _)| name.to_owned())
            .collect();
        for input in [case.collab_server, case.options] {
            if input.starts_with(case.out) {
                expected.insert(input.rsplit('/').next().unwrap().to_owned());
            }
        }
        let present: std::collections::BTreeSet<String> =
            std::fs::read_dir(common::root().join(case.out))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        assert_eq!(present, expected, "{}", case.name);
    }
}

/// The task's environment as the container sees it: `environment`, then `secrets` with a
/// value of the right shape in place of each ARN.
fn task_environment(container: &Value) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for variable in container["environment"].as_array().unwrap() {
        vars.push((
            variable["name"].as_str().unwrap().to_owned(),
            variable["value"].as_str().unwrap().to_owned(),
        ));
    }
    for secret in container["secrets"].as_array().into_iter().flatten() {
        let name = secret["name"].as_str().unwrap();
        assert!(
            secret["valueFrom"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:"),
            "{name}"
        );
        vars.push((name.to_owned(), placeholder(name)));
    }
    vars
}

#[test]
fn the_task_environment_parses_as_collab_server_configuration() {
    for case in CASES {
        let task = task_definition(case);
        let container = &task["containerDefinitions"][0];
        let vars = task_environment(container);
        let config = Config::from_env(vars.clone())
            .unwrap_or_else(|error| panic!("{}: {error} in {vars:?}", case.name));

        assert_eq!(
            container["portMappings"][0]["containerPort"].as_u64(),
            Some(u64::from(config.port)),
            "{}",
            case.name
        );
        assert_eq!(
            config.metrics_port,
            Some(server_contract::METRICS_PORT),
            "{}",
            case.name
        );
        let stop_timeout = container["stopTimeout"].as_i64().unwrap();
        assert!(stop_timeout <= 120, "{}: Fargate's limit", case.name);
        assert_eq!(
            config.shutdown_timeout_secs as i64,
            stop_timeout - server_contract::SHUTDOWN_MARGIN_SECONDS,
            "{}: the server finishes before SIGKILL",
            case.name
        );
        assert!(
            matches!(config.storage().unwrap(), StorageConfig::Postgres { .. }),
            "{}",
            case.name
        );
        assert!(config.redis_url.is_some(), "{}: REDIS_URL", case.name);
        let auth = config.auth().unwrap();
        match case.name {
            "hs256-ssm-parts" => {
                assert!(
                    matches!(auth, AuthConfig::Jwt { cognito: false, .. }),
                    "{auth:?}"
                );
                assert_eq!(config.database_host.as_deref(), Some("placeholder"));
                assert_eq!(config.database_sslmode, "verify-full");
            }
            _ => assert!(
                matches!(auth, AuthConfig::Jwt { cognito: true, .. }),
                "{auth:?}"
            ),
        }
    }
}

#[test]
fn zedi_dev_keeps_the_seeds_port_pool_log_group_and_secret() {
    let case = &CASES[0];
    let rendered = render(case);
    let task = serde_json::to_value(&rendered.task_definition).unwrap();
    let service = serde_json::to_value(&rendered.service).unwrap();
    let container = &task["containerDefinitions"][0];
    let vars = task_environment(container);
    let value = |name: &str| {
        vars.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(value("PORT").as_deref(), Some("1234"));
    assert_eq!(
        value("COGNITO_USER_POOL_ID").as_deref(),
        Some("ap-northeast-1_Q5fQJZkgd")
    );
    assert_eq!(value("COGNITO_REGION").as_deref(), Some("ap-northeast-1"));
    assert_eq!(
        container["logConfiguration"]["options"]["awslogs-group"],
        "/aws/ecs/zedi-dev/hocuspocus"
    );
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .starts_with("590183877893.dkr.ecr.ap-northeast-1.amazonaws.com/zedi-dev-hocuspocus:")
    );
    let database = container["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|secret| secret["name"] == "DATABASE_URL")
        .unwrap();
    assert!(
        database["valueFrom"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:ap-northeast-1:590183877893:secret:")
    );
    assert_eq!(service["cluster"], "zedi-dev-cluster");
    assert_eq!(service["serviceName"], "zedi-dev-hocuspocus");
    assert_eq!(service["loadBalancers"][0]["containerPort"], 1234);
}

#[test]
fn the_health_check_runs_the_binary_where_the_image_has_it() {
    let dockerfile = read("deploy/docker/server.Dockerfile");
    assert!(
        dockerfile.contains(&format!(
            "ENTRYPOINT [\"{}\"]",
            server_contract::SERVER_BINARY
        )),
        "the image's entrypoint is {}",
        server_contract::SERVER_BINARY
    );
    for case in CASES {
        let task = task_definition(case);
        assert_eq!(
            task["containerDefinitions"][0]["healthCheck"]["command"],
            serde_json::json!(["CMD", server_contract::SERVER_BINARY, "healthcheck"]),
            "{}: exec form: the image has no shell and no curl",
            case.name
        );
    }
}

#[test]
fn the_notes_follow_the_servers_keepalive() {
    let notes = render(&CASES[2]).notes;
    assert!(
        notes.contains("keepalive interval of 15 s") && notes.contains("below 30 s"),
        "{notes}"
    );
    let autoscaled = render(&CASES[1]);
    let scaling = autoscaled.autoscaling.as_ref().expect("autoscaled");
    assert_eq!(scaling.target.resource_id, "service/apps/collab");
    assert!(
        autoscaled
            .notes
            .contains("put-scaling-policy --region ap-northeast-1 --cli-input-json file://scaling-policy-requests.json"),
        "{}",
        autoscaled.notes
    );
    assert!(
        autoscaled.notes.contains("`spec.monitoring`"),
        "{}",
        autoscaled.notes
    );
}

#[test]
fn the_command_writes_the_files_and_names_the_field_it_cannot_render() {
    let binary = env!("CARGO_BIN_EXE_collab-operator");
    let case = &CASES[0];
    let out = std::env::temp_dir().join(format!("collab-ecs-render-{}", std::process::id()));
    for (format, names) in [
        (
            "cli",
            &[
                ecs::TASK_DEFINITION_FILE,
                ecs::SERVICE_FILE,
                ecs::SERVICE_UPDATE_FILE,
                ecs::target_group::ATTRIBUTES_FILE,
                ecs::target_group::HEALTH_CHECK_FILE,
                ecs::NOTES_FILE,
            ][..],
        ),
        (
            "terraform",
            &[
                ecs::terraform::CONFIG_FILE,
                ecs::terraform::IMPORTS_FILE,
                ecs::NOTES_FILE,
            ][..],
        ),
    ] {
        let output = std::process::Command::new(binary)
            .current_dir(common::root())
            .args([
                "ecs",
                "render",
                "-f",
                case.collab_server,
                "--ecs",
                case.options,
                "--format",
                format,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut written: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        let mut wanted: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        wanted.sort();
        assert_eq!(written, wanted, "--format {format}");
        for name in names {
            assert_eq!(
                std::fs::read_to_string(out.join(name)).unwrap(),
                read(&format!("{}/{name}", case.out)),
                "{name}"
            );
        }
        std::fs::remove_dir_all(&out).unwrap();
    }

    // The Kubernetes example against zedi-dev's AWS facts: its database Secret has no ARN.
    let output = std::process::Command::new(binary)
        .current_dir(common::root())
        .args(["ecs", "render", "-f", "deploy/examples/collabserver.yaml"])
        .args(["--ecs", case.options, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "ecs.yaml: secrets: no ARN for Secret collab-db-app key DATABASE_URL, uri or host (spec.database.secretRef)"
        ),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written when rendering fails");
}
