#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, CASES};

/// Multi-document YAML of every object of a case, in apply order.
fn render(case: &common::Case) -> String {
    let objects = common::built(case).to_objects();
    let mut out = format!(
        "# Golden output of the operator's build step for {} (see operator/tests/integration/common.rs).\n",
        case.files.join(" + ")
    );
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object).unwrap());
    }
    out
}

#[test]
fn built_objects_match_the_golden_files() {
    for case in CASES {
        let path = common::root()
            .join("operator/tests/golden")
            .join(format!("{}.yaml", case.name));
        common::assert_matches_file(&path, &render(case));
    }
}

#[test]
fn every_object_is_labelled_owned_and_named_after_its_collab_server() {
    for case in CASES {
        let server = common::validated(case);
        for object in common::built(case).to_objects() {
            let metadata = &object["metadata"];
            let what = format!("{} {} ({})", object["kind"], metadata["name"], case.name);
            assert!(
                metadata["name"].as_str().unwrap().starts_with(&server.name),
                "{what}"
            );
            assert_eq!(metadata["namespace"], server.namespace.as_str(), "{what}");
            assert_eq!(
                metadata["labels"]["app.kubernetes.io/managed-by"], "collab-operator",
                "{what}"
            );
            assert_eq!(
                metadata["labels"]["app.kubernetes.io/instance"],
                server.name.as_str(),
                "{what}"
            );
            assert_eq!(metadata["ownerReferences"][0]["uid"], common::UID, "{what}");
            assert_eq!(metadata["ownerReferences"][0]["controller"], true, "{what}");
        }
    }
}

#[test]
fn secret_values_reach_pods_only_by_reference() {
    for case in CASES {
        let objects = common::built(case).to_objects();
        for object in objects.iter().filter(|object| object["kind"] != "Secret") {
            let text = object.to_string();
            for needle in ["fixture-", "change-me", common::REDIS_PASSWORD] {
                assert!(
                    !text.contains(needle),
                    "{} {} contains a Secret value ({needle})",
                    object["kind"],
                    object["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn a_rewritten_secret_changes_the_pod_template() {
    let case = &CASES[0];
    let hash = |loaded: &common::Loaded| {
        let server = collab_operator::validate::validate(
            &loaded.server,
            &loaded.dereferenced,
            &Default::default(),
        )
        .unwrap();
        let objects = collab_operator::controller::build::build(&server).to_objects();
        let deployment = objects
            .iter()
            .find(|object| object["kind"] == "Deployment" && object["metadata"]["name"] == "collab")
            .unwrap()
            .clone();
        deployment["spec"]["template"]["metadata"]["annotations"]["collab.zedi.dev/secret-versions"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut loaded = common::load(case);
    let before = hash(&loaded);
    loaded.dereferenced = loaded
        .dereferenced
        .with_secret("collab-jwt", [("secret", "rotated-secret")])
        .with_resource_version("collab-jwt", "2");
    let after = hash(&loaded);
    assert_ne!(after, before);
    assert!(after.contains("collab-jwt:2"), "{after}");
    assert!(!after.contains("rotated-secret"), "{after}");
}

#[test]
fn examples_follow_the_documented_shutdown_budget() {
    for case in CASES {
        let server = common::validated(case);
        let deployment = common::server_deployment(case);
        let pod = &deployment["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
        let pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_i64()
            .unwrap();
        assert!(
            pre_stop + server.shutdown.server_timeout_seconds < grace,
            "{}: preStop {pre_stop} s + shutdown {} s must end before SIGKILL at {grace} s",
            case.name,
            server.shutdown.server_timeout_seconds
        );
    }
}
