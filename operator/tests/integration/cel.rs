//! The CEL rules of the CRD (`x-kubernetes-validations`), evaluated, not only looked for: every
//! rule is taken from the generated schema with the path of the value it is attached to, and
//! run with the `cel` crate's interpreter as the API server would run it:
//! - `self` is the value at the rule's path; a rule runs only where that value is present and
//!   not null (a rule on `spec.env` runs once, on the list; on a map's values, once per value);
//! - the root rule sees only `metadata.name` and `metadata.generateName` of the metadata;
//! - the API server applies schema defaults before it validates, so every case is evaluated
//!   both as written and with the schema's defaults applied, and both must agree.
//!
//! Each invalid case is also run through the operator's own validation
//! (`collab_operator::validate`), which must reject it too, so the two layers agree.
//!
//! The rules use only what Kubernetes' CEL and the `cel` crate have in common (see the note in
//! `operator/src/crd/v1alpha1.rs`). What this cannot check is the API server's cost estimate of
//! each rule; `spec.env` has a `maxItems` for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value as Cel};
use collab_operator::crd;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common;
use crate::invalid_specs::{InvalidCase, base, invalid_cases, spec_with};

/// One `x-kubernetes-validations` entry and where it is.
#[derive(Clone, Debug)]
struct Rule {
    /// `spec.auth`, `spec.env`, `spec.podTemplate.labels`; `` for the root; `[]` for every
    /// item of a list and `{}` for every value of a map.
    path: String,
    rule: String,
    message: Option<String>,
    message_expression: Option<String>,
}

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let crd = serde_json::to_value(crd::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
});

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let mut found = Vec::new();
    collect(&SCHEMA, "", &mut found);
    found
});

fn schema() -> &'static Value {
    &SCHEMA
}

fn rules() -> &'static [Rule] {
    &RULES
}

fn join(path: &str, segment: &str) -> String {
    match (
        path.is_empty(),
        segment.starts_with('[') || segment.starts_with('{'),
    ) {
        (true, _) | (false, true) => format!("{path}{segment}"),
        (false, false) => format!("{path}.{segment}"),
    }
}

fn collect(schema: &Value, path: &str, found: &mut Vec<Rule>) {
    for entry in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        found.push(Rule {
            path: path.to_owned(),
            rule: entry["rule"].as_str().unwrap().to_owned(),
            message: entry["message"].as_str().map(str::to_owned),
            message_expression: entry["messageExpression"].as_str().map(str::to_owned),
        });
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            collect(property, &join(path, name), found);
        }
    }
    if schema["items"].is_object() {
        collect(&schema["items"], &join(path, "[]"), found);
    }
    if schema["additionalProperties"].is_object() {
        collect(&schema["additionalProperties"], &join(path, "{}"), found);
    }
}

/// The values a rule at `path` runs on: none when the value is absent or null.
fn values_at<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![object];
    let segments = path
        .replace("[]", ".[]")
        .replace("{}", ".{}")
        .split('.')
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    for segment in &segments {
        current = current
            .into_iter()
            .flat_map(|value| -> Vec<&Value> {
                match segment.as_str() {
                    "[]" => value.as_array().into_iter().flatten().collect(),
                    "{}" => value
                        .as_object()
                        .into_iter()
                        .flat_map(|map| map.values())
                        .collect(),
                    name => value.get(name).into_iter().collect(),
                }
            })
            .filter(|value| !value.is_null())
            .collect();
    }
    current
}

/// JSON as the API server gives it to CEL: integers are `int`, objects are maps.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(value) => Cel::Bool(*value),
        Value::Number(number) => match number.as_i64() {
            Some(int) => Cel::Int(int),
            None => Cel::Float(number.as_f64().unwrap()),
        },
        Value::String(text) => Cel::String(Arc::new(text.clone())),
        Value::Array(items) => Cel::from(items.iter().map(to_cel).collect::<Vec<_>>()),
        Value::Object(map) => Cel::from(
            map.iter()
                .map(|(key, value)| (key.clone(), to_cel(value)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// The object as the root rule sees it: of the metadata, only the name and generateName.
fn root_view(object: &Value) -> Value {
    let mut view = object.clone();
    let metadata = &object["metadata"];
    let mut visible = serde_json::Map::new();
    for key in ["name", "generateName"] {
        if let Some(value) = metadata.get(key) {
            visible.insert(key.to_owned(), value.clone());
        }
    }
    view["metadata"] = Value::Object(visible);
    view
}

/// Structural defaulting as the API server does it: a missing property with a `default` gets
/// it, in every object present (and in every item and map value).
fn apply_defaults(schema: &Value, value: &mut Value) {
    if let (Some(properties), Some(object)) =
        (schema["properties"].as_object(), value.as_object_mut())
    {
        for (name, property) in properties {
            if !object.contains_key(name)
                && let Some(default) = property.get("default")
            {
                object.insert(name.clone(), default.clone());
            }
            if let Some(child) = object.get_mut(name) {
                apply_defaults(property, child);
            }
        }
    }
    if let (true, Some(items)) = (schema["items"].is_object(), value.as_array_mut()) {
        for item in items {
            apply_defaults(&schema["items"], item);
        }
    }
    if let (true, Some(map)) = (
        schema["additionalProperties"].is_object(),
        value.as_object_mut(),
    ) {
        for item in map.values_mut() {
            apply_defaults(&schema["additionalProperties"], item);
        }
    }
}

fn env() -> Arc<Env> {
    Arc::new(Env::stdlib())
}

fn compile(env: &Env, source: &str) -> Program {
    env.compile(source)
        .unwrap_or_else(|error| panic!("{source}: does not compile: {error:?}"))
}

fn evaluate(env: &Arc<Env>, source: &str, value: &Value) -> Cel {
    let program = compile(env, source);
    let mut context = Context::with_env(env.clone());
    context.add_variable_from_value("self", to_cel(value));
    program
        .execute(&context)
        .unwrap_or_else(|error| panic!("{source} on {value}: {error:?}"))
}

/// A rule that rejected an object, with the message the API server would give.
#[derive(Debug)]
struct Failure {
    path: String,
    rule: String,
    message: String,
}

/// Runs every rule on `object` (as written); panics if the defaulted object gets a different
/// verdict from any rule.
fn failures(object: &Value) -> Vec<Failure> {
    let mut defaulted = object.clone();
    apply_defaults(schema(), &mut defaulted);
    let as_written = failures_of(object);
    let with_defaults = failures_of(&defaulted);
    let summary = |failures: &[Failure]| -> Vec<(String, String)> {
        failures
            .iter()
            .map(|failure| (failure.path.clone(), failure.rule.clone()))
            .collect()
    };
    assert_eq!(
        summary(&as_written),
        summary(&with_defaults),
        "schema defaults change the verdict on {object}"
    );
    as_written
}

fn failures_of(object: &Value) -> Vec<Failure> {
    let env = env();
    let mut failed = Vec::new();
    for rule in rules() {
        let view;
        let target = if rule.path.is_empty() {
            view = root_view(object);
            &view
        } else {
            object
        };
        for value in values_at(target, &rule.path) {
            match evaluate(&env, &rule.rule, value) {
                Cel::Bool(true) => {}
                Cel::Bool(false) => {
                    let message = match (&rule.message_expression, &rule.message) {
                        (Some(expression), _) => match evaluate(&env, expression, value) {
                            Cel::String(text) => text.to_string(),
                            other => panic!("{expression}: not a string: {other:?}"),
                        },
                        (None, Some(message)) => message.clone(),
                        (None, None) => format!("failed rule: {}", rule.rule),
                    };
                    failed.push(Failure {
                        path: rule.path.clone(),
                        rule: rule.rule.clone(),
                        message,
                    });
                }
                other => panic!("{}: not a bool on {value}: {other:?}", rule.rule),
            }
        }
    }
    failed
}

fn collab_server(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "collab.zedi.dev/v1alpha1",
        "kind": "CollabServer",
        "metadata": { "name": name, "namespace": "apps", "uid": "u-1", "labels": { "team": "x" } },
        "spec": spec,
    })
}

#[test]
fn every_rule_and_message_expression_compiles() {
    let env = env();
    let found = rules();
    assert!(!found.is_empty());
    for rule in found {
        compile(&env, &rule.rule);
        if let Some(expression) = &rule.message_expression {
            compile(&env, expression);
        }
        assert!(
            rule.message.is_some() || rule.message_expression.is_some(),
            "{}: {} has no message",
            rule.path,
            rule.rule
        );
        // The API server rejects messages with line breaks.
        assert!(!rule.message.as_deref().unwrap_or_default().contains('\n'));
    }
    let mut per_path: BTreeMap<&str, usize> = BTreeMap::new();
    for rule in found {
        *per_path.entry(rule.path.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_path,
        BTreeMap::from([
            ("", 1),
            ("spec", 1),
            ("spec.auth", 3),
            ("spec.auth.cognito.region", 1),
            ("spec.auth.cognito.userPoolId", 1),
            ("spec.auth.jwksUrl", 1),
            ("spec.autoscaling", 1),
            ("spec.env", 1),
            ("spec.ingress", 1),
            ("spec.ingress.path", 1),
            ("spec.podDisruptionBudget.maxUnavailable", 1),
            ("spec.podTemplate.annotations", 2),
            ("spec.podTemplate.labels", 2),
            ("spec.port", 1),
            ("spec.redis", 1),
            ("spec.terminationGracePeriodSeconds", 1),
            ("spec.webhook.url", 1),
        ]),
        "rules were added or removed: extend the cases below"
    );
}

#[test]
fn the_env_rule_lists_exactly_the_operator_managed_variables() {
    let rule = rules().iter().find(|rule| rule.path == "spec.env").unwrap();
    for name in collab_operator::server_contract::env::MANAGED {
        assert!(rule.rule.contains(&format!("'{name}'")), "{name}");
    }
    assert_eq!(
        rule.rule.matches('\'').count(),
        2 * collab_operator::server_contract::env::MANAGED.len()
    );
}

/// Every CollabServer in `path` (documents of other kinds are skipped).
fn collab_servers_in(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde_yaml::Value::deserialize(document).unwrap())
        .filter(|document| document["kind"].as_str() == Some("CollabServer"))
        .map(|document| serde_json::to_value(document).unwrap())
        .collect()
}

#[test]
fn committed_examples_and_fixtures_pass_every_rule() {
    let mut files = Vec::new();
    for directory in [
        "deploy/examples",
        "operator/tests/fixtures",
        "operator/tests/fixtures/ecs/collabserver",
        "operator/tests/fixtures/ecs/hs256-ssm-parts",
    ] {
        for entry in std::fs::read_dir(common::root().join(directory)).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "yaml")
            {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for file in &files {
        for object in collab_servers_in(file) {
            let failed = failures(&object);
            assert!(failed.is_empty(), "{}: {failed:#?}", file.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "only {checked} CollabServers found in {files:?}"
    );
}

#[test]
fn valid_specs_pass_every_rule() {
    let longest = "a".repeat(collab_operator::names::MAX_INSTANCE_NAME_LENGTH);
    let cases = [
        ("collab", base()),
        ("collab", json!({ "auth": { "allowAnonymous": true } })),
        (
            "collab",
            json!({ "auth": { "allowAnonymous": false, "jwksUrl": "http://idp.local/jwks.json", "issuer": "i", "audience": "a" } }),
        ),
        (
            "collab",
            json!({ "auth": { "cognito": { "userPoolId": "ap-northeast-1_Ab", "region": "ap-northeast-1" } } }),
        ),
        (longest.as_str(), base()),
        ("collab", spec_with(json!({ "port": 1234 }))),
        (
            "collab",
            spec_with(json!({ "terminationGracePeriodSeconds": 15 })),
        ),
        (
            "collab",
            spec_with(
                json!({ "redis": { "external": { "secretRef": { "name": "r", "key": "url" } }, "managed": { "enabled": false } } }),
            ),
        ),
        ("collab", spec_with(json!({ "redis": { "managed": {} } }))),
        (
            "collab",
            spec_with(
                json!({ "autoscaling": { "enabled": true, "minReplicas": 3, "maxReplicas": 3 } }),
            ),
        ),
        (
            "collab",
            spec_with(json!({ "autoscaling": { "enabled": true, "minReplicas": 10 } })),
        ),
        (
            "collab",
            spec_with(json!({ "autoscaling": { "enabled": true, "maxReplicas": 2 } })),
        ),
        // Rules of a disabled autoscaler are not checked, as by the operator.
        (
            "collab",
            spec_with(json!({ "autoscaling": { "minReplicas": 5, "maxReplicas": 3 } })),
        ),
        (
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": 0 } })),
        ),
        (
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": 1 } })),
        ),
        (
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": "25%" } })),
        ),
        (
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": "0%" } })),
        ),
        (
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": "100%" } })),
        ),
        (
            "collab",
            spec_with(
                json!({ "env": [{ "name": "COLLAB_SERVER_MAX_CONNECTIONS", "value": "10" }] }),
            ),
        ),
        (
            "collab",
            spec_with(
                json!({ "podTemplate": { "labels": { "team": "a", "app.kubernetes.io/part-of": "b" }, "annotations": { "collab.zedi.dev": "not the prefix" } } }),
            ),
        ),
        (
            "collab",
            spec_with(json!({ "ingress": { "enabled": false } })),
        ),
        (
            "collab",
            spec_with(
                json!({ "ingress": { "enabled": true, "host": "collab.example.com", "path": "/sync", "tlsSecretName": "tls" } }),
            ),
        ),
        (
            "collab",
            spec_with(
                json!({ "networkPolicy": { "enabled": true, "from": [{ "podSelector": {} }] } }),
            ),
        ),
        (
            "collab",
            spec_with(
                json!({ "database": { "secretRef": { "name": "db" }, "sslMode": "verify-full" } }),
            ),
        ),
    ];
    for (name, spec) in cases {
        let failed = failures(&collab_server(name, spec.clone()));
        assert!(failed.is_empty(), "{spec}: {failed:#?}");
    }
}

#[test]
fn each_invalid_spec_is_rejected_by_its_rule() {
    for InvalidCase {
        name,
        spec,
        path,
        words,
        kind,
    } in invalid_cases()
    {
        let object = collab_server(&name, spec.clone());
        assert_eq!(
            rust_validation(&object).err().as_deref(),
            kind,
            "{spec}: the operator's validation disagrees"
        );
        let failed = failures(&object);
        assert_eq!(
            failed.len(),
            1,
            "{spec}: expected only the rule at {path:?} to fail: {failed:#?}"
        );
        assert_eq!(failed[0].path, path, "{spec}: {failed:#?}");
        assert!(
            failed[0].message.contains(words),
            "{spec}: message {:?} lacks {words:?}",
            failed[0].message
        );
    }
}

/// The kind of error the operator's validation (`collab_operator::validate`) gives, with the
/// Secrets the cases refer to.
fn rust_validation(object: &Value) -> Result<(), String> {
    let server: collab_operator::crd::CollabServer =
        serde_json::from_value(object.clone()).unwrap();
    let dereferenced = collab_operator::dereferenced::Dereferenced::default()
        .with_secret("jwt", [("secret", "s")])
        .with_secret("j", [("k", "s")])
        .with_secret("r", [("url", "redis://r:6379")]);
    collab_operator::validate::validate(
        &server,
        &dereferenced,
        &collab_operator::validate::OperatorDefaults::default(),
    )
    .map(|_| ())
    .map_err(|error| error.kind().to_owned())
}

#[test]
fn the_ssl_mode_enum_is_the_operators_list() {
    let ssl_mode =
        &schema()["properties"]["spec"]["properties"]["database"]["properties"]["sslMode"];
    let values: Vec<&str> = ssl_mode["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect();
    assert_eq!(values, collab_operator::crd::v1alpha1::SSL_MODES);
}
