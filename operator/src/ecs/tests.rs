#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;
use crate::fixtures;

const OPTIONS: &str = r#"
accountId: "123456789012"
region: eu-west-1
cluster: prod
service: docs
image: registry.example/collab-server:1.0.0
cpu: 512
memory: 1024
executionRoleArn: arn:aws:iam::123456789012:role/docs-execution
network:
  subnets: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]
  securityGroups: [sg-0123456789abcdef0]
loadBalancer:
  targetGroupArn: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/docs/0123456789abcdef
logs:
  group: /ecs/docs
secrets:
  - name: jwt
    key: secret
    valueFrom: arn:aws:ssm:eu-west-1:123456789012:parameter/docs/jwt
  - name: db
    key: DATABASE_URL
    valueFrom: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docs-AbCdEf:DATABASE_URL::"
  - name: redis
    key: url
    valueFrom: arn:aws:secretsmanager:eu-west-1:123456789012:secret:docs-redis-AbCdEf
"#;

fn spec() -> Value {
    json!({
        "replicas": 2,
        "auth": { "jwtSecretRef": { "name": "jwt", "key": "secret" } },
        "database": { "secretRef": { "name": "db", "key": "DATABASE_URL" } },
        "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } } },
    })
}

fn with(mut spec: Value, patch: Value) -> Value {
    for (key, value) in patch.as_object().unwrap() {
        if value.is_null() {
            spec.as_object_mut().unwrap().remove(key);
        } else {
            spec[key] = value.clone();
        }
    }
    spec
}

fn options() -> EcsOptions {
    EcsOptions::from_yaml(OPTIONS).expect("the base options parse")
}

/// The base options with a change to their YAML.
fn options_with(edit: impl FnOnce(&mut serde_yaml::Value)) -> Result<EcsOptions, Error> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(OPTIONS).unwrap();
    edit(&mut value);
    EcsOptions::from_yaml(&serde_yaml::to_string(&value).unwrap())
}

fn rendered(spec: Value, options: &EcsOptions) -> Result<Rendered, Error> {
    render(&fixtures::collab_server(spec), options)
}

fn json_of(rendered: &Rendered) -> (Value, Value, Value) {
    (
        serde_json::to_value(&rendered.task_definition).unwrap(),
        serde_json::to_value(&rendered.service).unwrap(),
        serde_json::to_value(&rendered.service_update).unwrap(),
    )
}

fn rejected(spec: Value, options: &EcsOptions) -> Error {
    rendered(spec, options).expect_err("rejected")
}

fn variables(container: &Value, list: &str, value: &str) -> Vec<(String, String)> {
    container[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().unwrap().to_owned(),
                entry[value].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_task_runs_the_server_as_the_operator_would() {
    let (task, service, update) = json_of(&rendered(spec(), &options()).unwrap());
    assert_eq!(task["family"], "docs");
    assert_eq!(task["networkMode"], "awsvpc");
    assert_eq!(task["requiresCompatibilities"], json!(["FARGATE"]));
    assert_eq!(
        (&task["cpu"], &task["memory"]),
        (&json!("512"), &json!("1024"))
    );
    assert!(
        task.get("taskRoleArn").is_none(),
        "no task role unless asked"
    );
    let container = &task["containerDefinitions"][0];
    assert_eq!(container["name"], "collab-server");
    assert_eq!(container["image"], "registry.example/collab-server:1.0.0");
    assert_eq!(
        container["healthCheck"]["command"],
        json!(["CMD", "/usr/local/bin/collab-server", "healthcheck"])
    );
    assert_eq!(container["stopTimeout"], 30);
    assert_eq!(
        container["ulimits"],
        json!([{ "name": "nofile", "softLimit": 65535, "hardLimit": 65535 }])
    );
    assert_eq!(container["readonlyRootFilesystem"], true);
    assert_eq!(container["mountPoints"][0]["containerPath"], "/tmp");

    let environment = variables(container, "environment", "value");
    assert!(environment.contains(&("PORT".to_owned(), "1234".to_owned())));
    assert!(environment.contains(&(
        "COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS".to_owned(),
        "25".to_owned()
    )));
    assert_eq!(
        variables(container, "secrets", "valueFrom"),
        [
            (
                "JWT_SECRET".to_owned(),
                "arn:aws:ssm:eu-west-1:123456789012:parameter/docs/jwt".to_owned()
            ),
            (
                "DATABASE_URL".to_owned(),
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docs-AbCdEf:DATABASE_URL::"
                    .to_owned()
            ),
            (
                "REDIS_URL".to_owned(),
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docs-redis-AbCdEf".to_owned()
            ),
        ]
    );
    assert_eq!(
        container["logConfiguration"],
        json!({
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": "/ecs/docs",
                "awslogs-region": "eu-west-1",
                "awslogs-stream-prefix": "collab-server",
            }
        })
    );

    assert_eq!(service["serviceName"], "docs");
    assert_eq!(service["taskDefinition"], "docs");
    assert_eq!(service["desiredCount"], 2);
    assert_eq!(service["launchType"], "FARGATE");
    assert_eq!(
        service["loadBalancers"],
        json!([{
            "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/docs/0123456789abcdef",
            "containerName": "collab-server",
            "containerPort": 1234,
        }])
    );
    assert_eq!(
        service["deploymentConfiguration"]["deploymentCircuitBreaker"],
        json!({ "enable": true, "rollback": true })
    );
    assert_eq!(service["healthCheckGracePeriodSeconds"], 120);
    assert_eq!(
        service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"],
        "DISABLED"
    );
    assert_eq!(update["service"], "docs");
    assert_eq!(update["desiredCount"], 2);
    assert!(update.get("launchType").is_none() && update.get("serviceName").is_none());
}

#[test]
fn no_secret_value_or_unknown_key_reaches_the_json() {
    let rendered = rendered(spec(), &options()).unwrap();
    let (task, service, update) = json_of(&rendered);
    for (name, value) in [("task", task), ("service", service), ("update", update)] {
        let text = value.to_string();
        assert!(!text.contains("null"), "{name}: {text}");
    }
}

#[test]
fn the_stop_timeout_is_the_grace_period_without_the_pre_stop_pause_up_to_fargates_limit() {
    let longest = rendered(
        with(spec(), json!({ "terminationGracePeriodSeconds": 125 })),
        &options(),
    )
    .unwrap();
    let (task, _, _) = json_of(&longest);
    let container = &task["containerDefinitions"][0];
    assert_eq!(container["stopTimeout"], 120);
    assert!(variables(container, "environment", "value").contains(&(
        "COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS".to_owned(),
        "115".to_owned()
    )));

    let error = rejected(
        with(spec(), json!({ "terminationGracePeriodSeconds": 126 })),
        &options(),
    );
    assert_eq!(error.kind(), "StopTimeoutTooLong");
    assert_eq!(
        error.to_string(),
        "collabserver.yaml: spec.terminationGracePeriodSeconds 126 gives a container stopTimeout of 121 s (ECS needs no preStop pause: the grace period less 5 s), over Fargate's maximum of 120 s: set at most 125"
    );
}

#[test]
fn the_server_shuts_down_the_same_on_kubernetes_and_ecs() {
    for grace in server_contract::MIN_TERMINATION_GRACE_PERIOD_SECONDS..=125 {
        assert_eq!(
            server_contract::shutdown_timeout_for_stop_timeout(
                server_contract::stop_timeout_for_grace_period(grace)
            ),
            server_contract::shutdown_timeout_for_grace_period(grace),
            "{grace}"
        );
    }
}

#[test]
fn a_secret_key_without_an_arn_names_the_field_that_needs_it() {
    let options = options_with(|value| {
        let secrets = value["secrets"].as_sequence_mut().unwrap();
        secrets.retain(|secret| secret["name"] != "db");
    })
    .unwrap();
    let error = rejected(spec(), &options);
    assert_eq!(error.kind(), "MissingSecretArn");
    assert_eq!(
        error.to_string(),
        "ecs.yaml: secrets: no ARN for Secret db key DATABASE_URL (spec.database.secretRef): add {name: db, key: DATABASE_URL, valueFrom: ARN}"
    );

    let error = rejected(
        with(
            spec(),
            json!({ "auth": { "jwtSecretRef": { "name": "jwt", "key": "other" } } }),
        ),
        &self::options(),
    );
    assert!(
        error.to_string().starts_with(
            "ecs.yaml: secrets: no ARN for Secret jwt key other (spec.auth.jwtSecretRef)"
        ),
        "{error}"
    );
}

#[test]
fn a_database_secret_without_a_key_needs_a_url_or_host_arn() {
    let database = json!({ "database": { "secretRef": { "name": "rds" }, "databaseName": "app" } });
    let error = rejected(with(spec(), database.clone()), &options());
    assert_eq!(error.kind(), "MissingDatabaseSecretArn");
    assert!(
        error
            .to_string()
            .starts_with("ecs.yaml: secrets: no ARN for Secret rds key DATABASE_URL, uri or host"),
        "{error}"
    );

    // An RDS-managed secret: JSON keys host, port, dbname, username and password.
    let options = options_with(|value| {
        let secrets = value["secrets"].as_sequence_mut().unwrap();
        secrets.retain(|secret| secret["name"] != "db");
        for key in ["host", "port", "username", "password"] {
            secrets.push(
                serde_yaml::to_value(json!({
                    "name": "rds",
                    "key": key,
                    "valueFrom": format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf:{key}::"),
                }))
                .unwrap(),
            );
        }
    })
    .unwrap();
    let (task, _, _) = json_of(&rendered(with(spec(), database), &options).unwrap());
    let names: Vec<String> = variables(&task["containerDefinitions"][0], "secrets", "valueFrom")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "JWT_SECRET",
            "DATABASE_HOST",
            "DATABASE_PORT",
            "DATABASE_USER",
            "DATABASE_PASSWORD",
            "REDIS_URL"
        ]
    );
}

#[test]
fn an_arn_the_collab_server_does_not_read_is_rejected() {
    let options = options_with(|value| {
        value["secrets"].as_sequence_mut().unwrap().push(
            serde_yaml::to_value(json!({
                "name": "db",
                "key": "DATABASE_URI",
                "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/typo",
            }))
            .unwrap(),
        );
    })
    .unwrap();
    let error = rejected(spec(), &options);
    assert_eq!(error.kind(), "UnusedSecretArn");
    assert_eq!(
        error.to_string(),
        "ecs.yaml: secrets[3]: the CollabServer reads no Secret db key DATABASE_URI: remove the entry or correct its name and key"
    );
}

#[test]
fn an_invalid_task_size_lists_the_valid_ones() {
    let options = options_with(|value| value["memory"] = 512.into()).unwrap();
    let error = rejected(spec(), &options);
    assert_eq!(error.kind(), "InvalidTaskSize");
    let message = error.to_string();
    assert!(
        message.starts_with("ecs.yaml: cpu 512 with memory 512 is not a Fargate task size; valid sizes (cpu units, memory MiB) are cpu 256: memory 512, 1024 or 2048; cpu 512: memory 1024-4096 in steps of 1024;"),
        "{message}"
    );
    assert!(message.contains("cpu 16384: memory 32768-122880 in steps of 8192"));
}

#[test]
fn missing_and_unknown_fields_are_named() {
    let missing_role = options_with(|value| {
        value.as_mapping_mut().unwrap().remove("executionRoleArn");
    })
    .expect_err("a role is required");
    assert_eq!(missing_role.kind(), "ParseOptions");
    assert!(
        missing_role
            .to_string()
            .contains("missing field `executionRoleArn`"),
        "{missing_role}"
    );

    let missing_subnets = options_with(|value| {
        value["network"].as_mapping_mut().unwrap().remove("subnets");
    })
    .expect_err("subnets are required");
    assert!(
        missing_subnets.to_string().contains("network")
            && missing_subnets
                .to_string()
                .contains("missing field `subnets`"),
        "{missing_subnets}"
    );

    let unknown = options_with(|value| value["subnets"] = "subnet-0123abcd".into())
        .expect_err("unknown fields are rejected");
    assert!(
        unknown.to_string().contains("unknown field `subnets`"),
        "{unknown}"
    );
}

#[test]
fn values_of_the_wrong_shape_are_named() {
    type Edit = fn(&mut serde_yaml::Value);
    let cases: [(&str, Edit); 10] = [
        (
            "ecs.yaml: network.subnets: list at least one subnet id",
            |value| value["network"]["subnets"] = serde_yaml::Value::Sequence(Vec::new()),
        ),
        (
            "ecs.yaml: network.subnets[1]: subnet-xyz is not a subnet id",
            |value| value["network"]["subnets"][1] = "subnet-xyz".into(),
        ),
        (
            "ecs.yaml: network.securityGroups: list at least one",
            |value| value["network"]["securityGroups"] = serde_yaml::Value::Sequence(Vec::new()),
        ),
        (
            "ecs.yaml: executionRoleArn: must be an IAM role ARN",
            |value| value["executionRoleArn"] = "docs-execution".into(),
        ),
        (
            "ecs.yaml: taskRoleArn: account 999999999999 is not accountId 123456789012",
            |value| value["taskRoleArn"] = "arn:aws:iam::999999999999:role/docs".into(),
        ),
        (
            "ecs.yaml: loadBalancer.targetGroupArn: region us-east-1 is not region eu-west-1",
            |value| {
                value["loadBalancer"]["targetGroupArn"] =
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/docs/0123456789abcdef".into()
            },
        ),
        (
            "ecs.yaml: accountId: must be the 12-digit account id",
            |value| value["accountId"] = "1234".into(),
        ),
        (
            "ecs.yaml: secrets[1].valueFrom: a JSON key needs three fields after the secret ARN",
            |value| {
                value["secrets"][1]["valueFrom"] =
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docs-AbCdEf:DATABASE_URL"
                        .into()
            },
        ),
        (
            "ecs.yaml: secrets[0].valueFrom: must be a Secrets Manager ARN",
            |value| value["secrets"][0]["valueFrom"] = "/docs/jwt".into(),
        ),
        (
            "ecs.yaml: secrets[2]: Secret db key DATABASE_URL is listed twice",
            |value| value["secrets"][2] = value["secrets"][1].clone(),
        ),
    ];
    for (expected, edit) in cases {
        let options = options_with(edit).unwrap();
        let error = rejected(spec(), &options);
        assert!(error.to_string().starts_with(expected), "{error}");
    }
}

#[test]
fn a_managed_redis_cannot_leave_the_cluster() {
    let options = options_with(|value| {
        value["secrets"]
            .as_sequence_mut()
            .unwrap()
            .retain(|secret| secret["name"] != "redis");
    })
    .unwrap();
    let error = rejected(
        with(spec(), json!({ "redis": { "managed": {} } })),
        &options,
    );
    assert_eq!(error.kind(), "ManagedRedis");
    assert!(error.to_string().contains("spec.redis.external"), "{error}");
}

#[test]
fn the_embedded_sqlite_database_is_refused() {
    let options = options_with(|value| {
        value["secrets"]
            .as_sequence_mut()
            .unwrap()
            .retain(|secret| secret["name"] == "jwt");
    })
    .unwrap();
    let error = rejected(
        with(
            spec(),
            json!({ "replicas": 1, "database": null, "redis": null }),
        ),
        &options,
    );
    assert_eq!(error.kind(), "SqliteUnsupported");
}

#[test]
fn validation_errors_are_the_operators() {
    let error = rejected(with(spec(), json!({ "auth": null })), &options());
    assert_eq!(error.kind(), "NoAuthentication");
    assert!(
        error
            .to_string()
            .starts_with("collabserver.yaml: spec.auth:"),
        "{error}"
    );
}

#[test]
fn more_tasks_than_one_need_redis() {
    let options = options_with(|value| {
        value["desiredCount"] = 3.into();
        value["secrets"]
            .as_sequence_mut()
            .unwrap()
            .retain(|secret| secret["name"] != "redis");
    })
    .unwrap();
    let error = rejected(
        with(spec(), json!({ "replicas": 1, "redis": null })),
        &options,
    );
    assert_eq!(
        error.to_string(),
        "ecs.yaml: desiredCount: 3 tasks need spec.redis in the CollabServer: without it tasks cannot see each other's edits"
    );
}

#[test]
fn an_autoscaled_service_keeps_its_count_on_update() {
    let autoscaled = with(
        spec(),
        json!({ "autoscaling": { "enabled": true, "minReplicas": 3, "maxReplicas": 8 } }),
    );
    let rendered = rendered(autoscaled, &options()).unwrap();
    let (_, service, update) = json_of(&rendered);
    assert_eq!(service["desiredCount"], 3);
    assert!(update.get("desiredCount").is_none(), "{update}");
    let scaling = rendered.autoscaling.as_ref().expect("autoscaled");
    assert_eq!(
        serde_json::to_value(&scaling.target).unwrap(),
        json!({
            "ServiceNamespace": "ecs",
            "ResourceId": "service/prod/docs",
            "ScalableDimension": "ecs:service:DesiredCount",
            "MinCapacity": 3,
            "MaxCapacity": 8,
        })
    );
    let cpu = serde_json::to_value(&scaling.cpu).unwrap();
    assert_eq!(cpu["PolicyName"], "docs-cpu");
    assert_eq!(
        cpu["TargetTrackingScalingPolicyConfiguration"],
        json!({
            "TargetValue": 70,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
            "ScaleInCooldown": 120,
            "ScaleOutCooldown": 60,
        })
    );
    assert!(scaling.requests.is_none(), "no ALB ARN, no request policy");
    let config = &rendered.terraform.config;
    assert_eq!(
        config["resource"]["aws_ecs_service"]["docs"]["lifecycle"],
        json!([{ "ignore_changes": ["desired_count"] }]),
        "Terraform leaves the count to Application Auto Scaling"
    );
    assert_eq!(
        config["resource"]["aws_appautoscaling_target"]["docs"]["max_capacity"],
        8
    );
    let policies = config["resource"]["aws_appautoscaling_policy"]
        .as_object()
        .unwrap();
    assert_eq!(policies.keys().collect::<Vec<_>>(), ["docs_cpu"]);

    let fixed = rendered_fixed_terraform();
    assert!(fixed["resource"].get("aws_appautoscaling_target").is_none());
    assert!(
        fixed["resource"]["aws_ecs_service"]["docs"]
            .get("lifecycle")
            .is_none()
    );
}

fn rendered_fixed_terraform() -> Value {
    rendered(spec(), &options()).unwrap().terraform.config
}

#[test]
fn requests_per_target_scale_with_the_albs_label_and_need_its_arn() {
    let autoscaled = with(
        spec(),
        json!({ "autoscaling": { "enabled": true, "minReplicas": 2, "maxReplicas": 4 } }),
    );
    let options = options_with(|value| {
        value["loadBalancer"]["loadBalancerArn"] = serde_yaml::Value::from(
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/00aa11bb22cc33dd",
        );
        value["autoscaling"] = serde_yaml::from_str("{requestsPerTarget: 300}").unwrap();
    })
    .unwrap();
    let rendered = rendered(autoscaled.clone(), &options).unwrap();
    let requests = serde_json::to_value(rendered.autoscaling.unwrap().requests.unwrap()).unwrap();
    assert_eq!(
        requests["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"],
        json!({
            "PredefinedMetricType": "ALBRequestCountPerTarget",
            "ResourceLabel": "app/web/00aa11bb22cc33dd/targetgroup/docs/0123456789abcdef",
        })
    );
    assert_eq!(
        requests["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
        300
    );

    let without_arn = options_with(|value| {
        value["autoscaling"] = serde_yaml::from_str("{requestsPerTarget: 300}").unwrap();
    })
    .unwrap();
    let error = rejected(autoscaled, &without_arn);
    assert!(
        matches!(&error, Error::InvalidOption { field, .. } if field == "autoscaling.requestsPerTarget"),
        "{error}"
    );
    let network_load_balancer = options_with(|value| {
        value["loadBalancer"]["loadBalancerArn"] = serde_yaml::Value::from(
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/web/00aa11bb22cc33dd",
        );
    })
    .unwrap();
    let error = rejected(spec(), &network_load_balancer);
    assert!(
        error.to_string().contains("Application Load Balancer"),
        "{error}"
    );
}

#[test]
fn copilot_defaults_tags_az_rebalancing_and_no_exec() {
    let rendered = rendered(spec(), &options()).unwrap();
    let (task, service, update) = json_of(&rendered);
    for settings in [&service, &update] {
        assert_eq!(settings["propagateTags"], "SERVICE");
        assert_eq!(settings["enableECSManagedTags"], true);
        assert_eq!(settings["enableExecuteCommand"], false);
        assert_eq!(settings["availabilityZoneRebalancing"], "ENABLED");
        assert!(settings.get("capacityProviderStrategy").is_none());
    }
    assert!(service.get("tags").is_none() && task.get("tags").is_none());
    let container = &task["containerDefinitions"][0];
    assert!(container.get("linuxParameters").is_none());
    assert_eq!(container["readonlyRootFilesystem"], true);

    let tagged = options_with(|value| {
        value["tags"] = serde_yaml::from_str("{team: docs, cost-center: '42'}").unwrap();
        value["propagateTags"] = serde_yaml::Value::from("TASK_DEFINITION");
        value["availabilityZoneRebalancing"] = serde_yaml::Value::from("DISABLED");
    })
    .unwrap();
    let (task, service, update) = json_of(&rendered_with(&tagged));
    let tags = json!([{ "key": "cost-center", "value": "42" }, { "key": "team", "value": "docs" }]);
    assert_eq!(task["tags"], tags);
    assert_eq!(service["tags"], tags);
    assert!(update.get("tags").is_none(), "UpdateService takes no tags");
    assert_eq!(service["propagateTags"], "TASK_DEFINITION");
    assert_eq!(update["availabilityZoneRebalancing"], "DISABLED");

    let reserved = options_with(|value| {
        value["tags"] = serde_yaml::from_str("{'aws:owner': me}").unwrap();
    })
    .unwrap();
    let error = rejected(spec(), &reserved);
    assert!(error.to_string().contains("tags.aws:owner"), "{error}");
}

fn rendered_with(options: &EcsOptions) -> Rendered {
    rendered(spec(), options).unwrap()
}

#[test]
fn execute_command_turns_on_the_init_process_and_needs_a_task_role() {
    let without_role = options_with(|value| {
        value["enableExecuteCommand"] = serde_yaml::Value::from(true);
    })
    .unwrap();
    let error = rejected(spec(), &without_role);
    assert!(
        matches!(&error, Error::InvalidOption { field, .. } if field == "enableExecuteCommand"),
        "{error}"
    );
    let exec = options_with(|value| {
        value["enableExecuteCommand"] = serde_yaml::Value::from(true);
        value["taskRoleArn"] = serde_yaml::Value::from("arn:aws:iam::123456789012:role/docs-task");
    })
    .unwrap();
    let rendered = rendered_with(&exec);
    let (task, service, update) = json_of(&rendered);
    let container = &task["containerDefinitions"][0];
    assert_eq!(
        container["linuxParameters"],
        json!({ "initProcessEnabled": true })
    );
    assert_eq!(
        container["readonlyRootFilesystem"], false,
        "the SSM agent writes"
    );
    assert_eq!(service["enableExecuteCommand"], true);
    assert_eq!(update["enableExecuteCommand"], true);
    assert!(rendered.notes.contains("ssmmessages:CreateControlChannel"));
}

#[test]
fn fargate_spot_replaces_the_launch_type_with_a_strategy() {
    let spot = options_with(|value| {
        value["fargateSpot"] = serde_yaml::from_str("{spotWeight: 4}").unwrap();
    })
    .unwrap();
    let rendered = rendered_with(&spot);
    let (_, service, update) = json_of(&rendered);
    let strategy = json!([
        { "capacityProvider": "FARGATE", "weight": 1, "base": 1 },
        { "capacityProvider": "FARGATE_SPOT", "weight": 4, "base": 0 },
    ]);
    assert_eq!(service["capacityProviderStrategy"], strategy);
    assert_eq!(update["capacityProviderStrategy"], strategy);
    assert!(service.get("launchType").is_none(), "{service}");
    let terraform = &rendered.terraform.config["resource"]["aws_ecs_service"]["docs"];
    assert!(terraform.get("launch_type").is_none());
    assert_eq!(
        terraform["capacity_provider_strategy"][1]["capacity_provider"],
        "FARGATE_SPOT"
    );
    assert!(rendered.notes.contains("put-cluster-capacity-providers"));

    for (yaml, field) in [
        ("{spotWeight: 0}", "fargateSpot.spotWeight"),
        ("{spotWeight: 1001}", "fargateSpot.spotWeight"),
        (
            "{spotWeight: 1, onDemandWeight: 1001}",
            "fargateSpot.onDemandWeight",
        ),
    ] {
        let options = options_with(|value| {
            value["fargateSpot"] = serde_yaml::from_str(yaml).unwrap();
        })
        .unwrap();
        let error = rejected(spec(), &options);
        assert!(
            matches!(&error, Error::InvalidOption { field: named, .. } if named == field),
            "{yaml}: {error}"
        );
    }
}

#[test]
fn the_health_checks_wait_out_the_startup_window_of_kubernetes() {
    let (task, service, _) = json_of(&rendered(spec(), &options()).unwrap());
    let window = crate::server_contract::STARTUP_SECONDS;
    assert_eq!(window, 120);
    assert_eq!(
        task["containerDefinitions"][0]["healthCheck"]["startPeriod"],
        window
    );
    assert_eq!(service["healthCheckGracePeriodSeconds"], window);
    let probe = crate::server_contract::STARTUP_PROBE_PERIOD_SECONDS
        * crate::server_contract::STARTUP_PROBE_FAILURES;
    assert_eq!(
        probe, window,
        "the Kubernetes startup probe allows the same"
    );
}

#[test]
fn the_target_group_gets_health_path_short_deregistration_and_no_stickiness() {
    let rendered = rendered(spec(), &options()).unwrap();
    let arn =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/docs/0123456789abcdef";
    assert_eq!(
        serde_json::to_value(&rendered.target_group_attributes).unwrap(),
        json!({
            "TargetGroupArn": arn,
            "Attributes": [
                { "Key": "deregistration_delay.timeout_seconds", "Value": "30" },
                { "Key": "stickiness.enabled", "Value": "false" },
            ],
        })
    );
    let health = serde_json::to_value(&rendered.target_group_health_check).unwrap();
    assert_eq!(health["HealthCheckPath"], "/health");
    assert_eq!(health["Matcher"], json!({ "HttpCode": "200" }));
    // Without a VPC id the Terraform output leaves the target group to the user's own
    // configuration; with one it declares and imports it.
    assert!(
        rendered.terraform.config["resource"]
            .get("aws_lb_target_group")
            .is_none()
    );
    assert_eq!(
        rendered.terraform.imports["import"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let with_vpc = options_with(|value| {
        value["loadBalancer"]["vpcId"] = serde_yaml::Value::from("vpc-0123456789abcdef0");
    })
    .unwrap();
    let terraform = rendered_with(&with_vpc).terraform;
    let group = &terraform.config["resource"]["aws_lb_target_group"]["docs"];
    assert_eq!(group["name"], "docs");
    assert_eq!(group["deregistration_delay"], "30");
    assert_eq!(group["health_check"][0]["path"], "/health");
    assert_eq!(group["stickiness"][0]["enabled"], false);
    assert_eq!(
        terraform.imports["import"][1],
        json!({ "to": "aws_lb_target_group.docs", "id": arn })
    );
}

#[test]
fn terraform_adopts_the_service_and_escapes_every_template() {
    let options = options_with(|value| {
        value["cluster"] =
            serde_yaml::Value::from("arn:aws:ecs:eu-west-1:123456789012:cluster/prod");
        value["service"] = serde_yaml::Value::from("2-docs");
    })
    .unwrap();
    let spec = with(
        spec(),
        json!({ "env": [{ "name": "GREETING", "value": "${hello} %{if x}" }] }),
    );
    let terraform = rendered(spec, &options).unwrap().terraform;
    let name = "ecs_2_docs";
    assert_eq!(
        terraform.imports["import"][0],
        json!({ "to": format!("aws_ecs_service.{name}"), "id": "prod/2-docs" })
    );
    let service = &terraform.config["resource"]["aws_ecs_service"][name];
    // The infrastructure is a variable whose default is ecs.yaml's value (issue 24: a root
    // module passes its own resources' attributes).
    assert_eq!(service["cluster"], format!("${{var.{name}_cluster}}"));
    assert_eq!(
        terraform.config["variable"][format!("{name}_cluster")]["default"],
        "prod",
        "the name, as the import id has it"
    );
    let network = &service["network_configuration"][0];
    assert_eq!(network["subnets"], format!("${{var.{name}_subnets}}"));
    assert_eq!(
        network["security_groups"],
        format!("${{var.{name}_security_groups}}")
    );
    for variable in [
        "subnets",
        "security_groups",
        "assign_public_ip",
        "target_group_arn",
        "execution_role_arn",
        "task_role_arn",
        "secret_arns",
    ] {
        assert!(
            terraform.config["variable"]
                .get(format!("{name}_{variable}"))
                .is_some(),
            "no variable {variable}"
        );
    }
    let secrets = terraform.config["locals"][format!("{name}_container_definitions")][0]["secrets"]
        .as_array()
        .unwrap();
    assert!(
        secrets.iter().all(|secret| secret["valueFrom"]
            .as_str()
            .unwrap()
            .starts_with(&format!("${{var.{name}_secret_arns[\""))),
        "{secrets:?}"
    );
    assert_eq!(
        terraform.config["terraform"]["required_providers"]["aws"]["source"],
        "hashicorp/aws"
    );
    assert!(
        terraform.config["output"]
            .get(format!("{name}_service_id"))
            .is_some()
    );
    assert_eq!(
        service["task_definition"],
        format!("${{aws_ecs_task_definition.{name}.arn}}")
    );
    let containers = &terraform.config["locals"][format!("{name}_container_definitions")];
    assert_eq!(containers[0]["image"], format!("${{var.{name}_image}}"));
    let greeting = containers[0]["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|variable| variable["name"] == "GREETING")
        .unwrap();
    assert_eq!(greeting["value"], "$${hello} %%{if x}");
    assert_eq!(
        terraform.config["variable"][format!("{name}_image")]["default"],
        "registry.example/collab-server:1.0.0"
    );
}

#[test]
fn extra_environment_variables_are_values_or_secrets() {
    let options = options_with(|value| {
        value["secrets"].as_sequence_mut().unwrap().push(
            serde_yaml::to_value(json!({
                "name": "license",
                "key": "key",
                "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/docs/license",
            }))
            .unwrap(),
        );
    })
    .unwrap();
    let env = json!({ "env": [
        { "name": "COLLAB_SERVER_MAX_CONNECTIONS", "value": "5000" },
        { "name": "COLLAB_SERVER_REDIS_PREFIX",
          "valueFrom": { "secretKeyRef": { "name": "license", "key": "key" } } },
        { "name": "COLLAB_SERVER_INSTANCE_ID",
          "valueFrom": { "secretKeyRef": { "name": "license", "key": "absent", "optional": true } } },
    ]});
    let (task, _, _) = json_of(&rendered(with(spec(), env), &options).unwrap());
    let container = &task["containerDefinitions"][0];
    assert!(variables(container, "environment", "value").contains(&(
        "COLLAB_SERVER_MAX_CONNECTIONS".to_owned(),
        "5000".to_owned()
    )));
    let secrets = variables(container, "secrets", "valueFrom");
    assert!(secrets.contains(&(
        "COLLAB_SERVER_REDIS_PREFIX".to_owned(),
        "arn:aws:ssm:eu-west-1:123456789012:parameter/docs/license".to_owned()
    )));
    assert!(
        !secrets
            .iter()
            .any(|(name, _)| name == "COLLAB_SERVER_INSTANCE_ID"),
        "an optional key ecs.yaml does not map stays unset"
    );

    let config_map = json!({ "env": [
        { "name": "COLLAB_SERVER_MAX_CONNECTIONS",
          "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "max" } } },
    ]});
    let error = rejected(with(spec(), config_map), &self::options());
    assert_eq!(error.kind(), "UnsupportedEnvSource");
    assert!(error.to_string().contains("spec.env[0]"), "{error}");
}

#[test]
fn the_image_comes_from_ecs_yaml_or_the_spec() {
    let without_image = options_with(|value| {
        value.as_mapping_mut().unwrap().remove("image");
    })
    .unwrap();
    assert_eq!(rejected(spec(), &without_image).kind(), "MissingImage");
    let from_spec = rendered(
        with(spec(), json!({ "image": "registry.example/own:2" })),
        &without_image,
    )
    .unwrap();
    assert_eq!(
        from_spec.task_definition.container_definitions[0].image,
        "registry.example/own:2"
    );
    let overridden = rendered(
        with(spec(), json!({ "image": "registry.example/own:2" })),
        &options(),
    )
    .unwrap();
    assert_eq!(
        overridden.task_definition.container_definitions[0].image,
        "registry.example/collab-server:1.0.0"
    );
}

#[test]
fn the_notes_give_the_load_balancer_settings_and_the_permissions() {
    let notes = rendered(spec(), &options()).unwrap().notes;
    assert!(
        notes.contains("deregistration delay (`deregistration_delay.timeout_seconds`) 30 s"),
        "{notes}"
    );
    assert!(
        notes.contains("modify-target-group-attributes --region eu-west-1 --cli-input-json file://target-group-attributes.json"),
        "{notes}"
    );
    assert!(notes.contains("terraform plan"), "{notes}");
    assert!(notes.contains("keepalive interval of 10 s"), "{notes}");
    assert!(notes.contains("`arn:aws:secretsmanager:eu-west-1:123456789012:secret:docs-AbCdEf`"));
    assert!(notes.contains("`arn:aws:ssm:eu-west-1:123456789012:parameter/docs/jwt`"));
    assert!(notes.ends_with('\n') && !notes.ends_with("\n\n"), "{notes}");
    assert!(!notes.contains("\n\n\n"));
}

#[test]
fn collab_server_files_hold_exactly_one_collab_server() {
    let server = "apiVersion: collab.zedi.dev/v1alpha1\nkind: CollabServer\nmetadata:\n  name: docs\nspec: {}\n";
    assert_eq!(
        parse_collab_server(&format!("---\n{server}---\n"))
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("docs")
    );
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n";
    let error = parse_collab_server(&format!("{server}---\n{secret}")).unwrap_err();
    assert_eq!(error.kind(), "NotACollabServer");
    assert!(
        error
            .to_string()
            .starts_with("collabserver.yaml: document 2 is v1 Secret"),
        "{error}"
    );
    assert_eq!(
        parse_collab_server(&format!("{server}---\n{server}"))
            .unwrap_err()
            .kind(),
        "SeveralCollabServers"
    );
    assert_eq!(
        parse_collab_server("").unwrap_err().kind(),
        "NoCollabServer"
    );
    let typo = server.replace(
        "spec: {}",
        "spec:\n  replica: 2\n  auth:\n    allowAnonymus: true",
    );
    let error = parse_collab_server(&typo).unwrap_err();
    assert_eq!(error.kind(), "UnknownCollabServerField");
    assert!(
        error
            .to_string()
            .starts_with("collabserver.yaml: spec.replica is not a CollabServer field"),
        "{error}"
    );
}

#[test]
fn value_from_forms_are_recognised() {
    use options::{SecretSource, check_value_from};
    assert_eq!(
        check_value_from(
            "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:app/db-AbCdEf:DATABASE_URL::"
        ),
        Ok(SecretSource::SecretsManagerJsonKey {
            secret_arn: "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:app/db-AbCdEf",
            json_key: "DATABASE_URL",
        })
    );
    assert_eq!(
        check_value_from("arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:app/db-AbCdEf"),
        Ok(SecretSource::SecretsManager {
            secret_arn: "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:app/db-AbCdEf",
        })
    );
    assert_eq!(
        check_value_from("arn:aws:ssm:ap-northeast-1:123456789012:parameter/app/jwt"),
        Ok(SecretSource::SsmParameter {
            parameter_arn: "arn:aws:ssm:ap-northeast-1:123456789012:parameter/app/jwt",
        })
    );
    for bad in [
        "",
        "arn:aws:s3:::bucket/key",
        "arn:aws:ssm:ap-northeast-1:123456789012:parameter",
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:",
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:db:key:",
    ] {
        assert!(check_value_from(bad).is_err(), "{bad}");
    }
}

#[test]
fn kubernetes_only_fields_are_named_in_the_notes() {
    let notes = rendered(
        with(
            spec(),
            json!({
                "ingress": { "enabled": true, "host": "docs.example.com" },
                "networkPolicy": { "enabled": true },
            }),
        ),
        &options(),
    )
    .unwrap()
    .notes;
    assert!(notes.contains("`spec.ingress`"), "{notes}");
    assert!(notes.contains("`spec.networkPolicy`"), "{notes}");
    let plain = rendered(spec(), &options()).unwrap().notes;
    assert!(!plain.contains("`spec.ingress`"));
}
