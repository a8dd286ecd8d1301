//! Committed generated files: the CRD, the chart's copy of it, and the field reference in
//! `docs/operator.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use collab_operator::crd;
use serde_json::Value;

use crate::common;

const BEGIN: &str = "<!-- BEGIN GENERATED: CollabServer reference (COLLAB_OPERATOR_BLESS=1 cargo test -p collab-operator) -->";
const END: &str = "<!-- END GENERATED: CollabServer reference -->";

#[test]
fn committed_crd_is_what_collab_operator_crd_prints() {
    let yaml = crd::crd_yaml().unwrap();
    common::assert_matches_file(&common::root().join("crds/collabserver.yaml"), &yaml);
    common::assert_matches_file(
        &common::root().join("charts/collab-operator/crds/collabserver.yaml"),
        &yaml,
    );
}

#[test]
fn docs_reference_matches_the_schema() {
    let crd = serde_json::to_value(crd::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut table = String::new();
    for root in ["spec", "status"] {
        table.push_str(&format!(
            "\n### `{root}`\n\n| Field | Type | Default | Description |\n|---|---|---|---|\n"
        ));
        rows(root, &schema[root], &mut table);
    }
    let generated = format!("{BEGIN}\n{table}\n{END}");

    let path = common::root().join("docs/operator.md");
    let document = std::fs::read_to_string(&path).unwrap_or_default();
    let updated = match (document.find(BEGIN), document.find(END)) {
        (Some(start), Some(end)) => {
            format!(
                "{}{generated}{}",
                &document[..start],
                &document[end + END.len()..]
            )
        }
        _ => format!("{document}\n{generated}\n"),
    };
    common::assert_matches_file(&path, &updated);
}

/// Kubernetes types embedded as they are: described, not expanded.
const EMBEDDED: &[&str] = &[
    "spec.resources",
    "spec.imagePullSecrets",
    "spec.env",
    "spec.redis.managed.resources",
    "spec.podTemplate.tolerations",
    "spec.podTemplate.affinity",
    "spec.podTemplate.topologySpreadConstraints",
    "spec.networkPolicy.from",
    "spec.networkPolicy.metricsFrom",
    "status.conditions",
];

fn rows(path: &str, schema: &Value, out: &mut String) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let field = format!("{path}.{name}");
        let description = property["description"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        let default = match &property["default"] {
            Value::Null => String::new(),
            value => format!("`{value}`"),
        };
        out.push_str(&format!(
            "| `{}` | {} | {default} | {description} |\n",
            field
                .trim_start_matches("spec.")
                .trim_start_matches("status."),
            type_name(property)
        ));
        if !EMBEDDED.contains(&field.as_str()) {
            rows(&field, property, out);
            if property["type"] == "array" {
                rows(&format!("{field}[]"), &property["items"], out);
            }
        }
    }
}

fn type_name(property: &Value) -> String {
    if property["x-kubernetes-int-or-string"] == true {
        return "integer or string".to_owned();
    }
    let base = property["type"].as_str().unwrap_or("object");
    let base = match property["enum"].as_array() {
        Some(values) => format!(
            "{base}: {}",
            values
                .iter()
                .map(|value| value.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => base.to_owned(),
    };
    match base.as_str() {
        "array" => format!("array of {}", type_name(&property["items"])),
        "object" if property["additionalProperties"].is_object() => "map of string".to_owned(),
        _ => base,
    }
}
