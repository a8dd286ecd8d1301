//! The same deployment as Terraform JSON configuration (`--format terraform`): for a service
//! that Terraform created (the seed's), so the next `terraform apply` keeps collab-server
//! instead of undoing a CLI deployment.
//!
//! [`terraform`] is a pure function of what the CLI JSON already holds ([`Parts`]), so both
//! formats describe the same task and service. It writes two files:
//!
//! * [`CONFIG_FILE`]: variables for the image (the one input that changes per deployment) and
//!   for the infrastructure the service plugs into (cluster, subnets, security groups, target
//!   group, roles, log group, secret ARNs), each with the value of `ecs.yaml` as its default, so
//!   a root module can pass `module.network.private_subnets` or a secret's `.arn` instead; the
//!   container definitions as a local, `aws_ecs_task_definition`, `aws_ecs_service` (with
//!   `lifecycle` where Terraform and deployments meet), Application Auto Scaling when the
//!   CollabServer autoscales, and, given `loadBalancer.vpcId`, the target group with the
//!   attributes the server needs.
//! * [`IMPORTS_FILE`]: `import` blocks that adopt the existing service and target group into
//!   these resources (delete the file for a new service, and when the configuration is used as
//!   a module: Terraform allows `import` blocks in the root module only).
//!
//! Outputs name what other configuration references (service, task definition, target
//! group), and a `terraform` block pins the provider's major versions.
//!
//! Every string Terraform reads as a template (`${…}`, `%{…}`) is escaped, except the few
//! references written here on purpose.

use serde_json::{Map, Value, json};

use super::autoscaling::{Autoscaling, ScalingPolicy};
use super::options::EcsOptions;
use super::service::CreateService;
use super::target_group::{self, TargetGroupAttributes, TargetGroupHealthCheck};
use super::task_definition::TaskDefinition;

pub const CONFIG_FILE: &str = "collab-server.tf.json";
pub const IMPORTS_FILE: &str = "imports.tf.json";

/// What the Terraform configuration is made from: the rendered CLI inputs.
pub struct Parts<'a> {
    pub options: &'a EcsOptions,
    pub task_definition: &'a TaskDefinition,
    pub service: &'a CreateService,
    pub autoscaling: Option<&'a Autoscaling>,
    pub target_group_attributes: &'a TargetGroupAttributes,
    pub target_group_health_check: &'a TargetGroupHealthCheck,
    /// The port the target group forwards to (the server's).
    pub port: u16,
}

/// The two files' JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terraform {
    pub config: Value,
    pub imports: Value,
}

/// A resource name from the service name: `zedi-dev-hocuspocus` -> `zedi_dev_hocuspocus`.
pub fn resource_name(service: &str) -> String {
    let name: String = service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name
    } else {
        format!("ecs_{name}")
    }
}

/// A literal for Terraform: `${` and `%{` would start a template sequence.
fn escape(text: &str) -> String {
    text.replace("${", "$${").replace("%{", "%%{")
}

/// `value` with every string escaped, object keys too: in an expression Terraform reads a JSON
/// object's property names as templates as well (tag keys, log options). Argument names are
/// plain identifiers, which escaping leaves as they are.
fn literal(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(escape(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(literal).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (escape(&key), literal(value)))
                .collect(),
        ),
        other => other,
    }
}

fn string(text: &str) -> Value {
    Value::String(escape(text))
}

fn tags(options: &EcsOptions) -> Value {
    literal(json!(options.tags))
}

/// The configuration and the imports; fails only if a container does not serialize.
pub fn terraform(parts: &Parts<'_>) -> Result<Terraform, serde_json::Error> {
    let Parts {
        options,
        task_definition,
        service,
        autoscaling,
        target_group_attributes,
        target_group_health_check,
        port,
    } = parts;
    let name = resource_name(&options.service);
    let image_variable = format!("{name}_image");
    let containers_local = format!("{name}_container_definitions");
    let var = |suffix: &str| format!("{name}_{suffix}");
    let reference = |suffix: &str| Value::String(format!("${{var.{name}_{suffix}}}"));

    let mut secret_arns = Map::new();
    let mut log_group = None;
    let mut containers = Vec::new();
    for container in &task_definition.container_definitions {
        let mut value = literal(serde_json::to_value(container)?);
        value["image"] = Value::String(format!("${{var.{image_variable}}}"));
        for secret in &container.secrets {
            secret_arns.insert(secret.name.clone(), string(&secret.value_from));
        }
        if let Some(secrets) = value.get_mut("secrets").and_then(Value::as_array_mut) {
            for secret in secrets {
                let key = secret["name"].as_str().unwrap_or_default().to_owned();
                secret["valueFrom"] =
                    Value::String(format!("${{var.{name}_secret_arns[\"{key}\"]}}"));
            }
        }
        if let Some(group) = value
            .pointer_mut("/logConfiguration/options/awslogs-group")
            .filter(|group| group.is_string())
        {
            log_group.get_or_insert_with(|| group.clone());
            *group = reference("log_group");
        }
        containers.push(value);
    }
    let image = task_definition
        .container_definitions
        .first()
        .map_or("", |container| container.image.as_str());

    let mut task = Map::new();
    task.insert(
        "//".to_owned(),
        json!(
            "Every change registers a new revision; skip_destroy keeps the old ones ACTIVE so a rollback can point the service back at them."
        ),
    );
    task.insert("family".to_owned(), string(&task_definition.family));
    task.insert(
        "container_definitions".to_owned(),
        Value::String(format!("${{jsonencode(local.{containers_local})}}")),
    );
    task.insert("cpu".to_owned(), string(&task_definition.cpu));
    task.insert("memory".to_owned(), string(&task_definition.memory));
    task.insert("network_mode".to_owned(), json!("awsvpc"));
    task.insert("requires_compatibilities".to_owned(), json!(["FARGATE"]));
    task.insert(
        "execution_role_arn".to_owned(),
        reference("execution_role_arn"),
    );
    task.insert("task_role_arn".to_owned(), reference("task_role_arn"));
    task.insert(
        "runtime_platform".to_owned(),
        literal(json!([{
            "operating_system_family": task_definition.runtime_platform.operating_system_family,
            "cpu_architecture": task_definition.runtime_platform.cpu_architecture,
        }])),
    );
    task.insert(
        "volume".to_owned(),
        literal(Value::Array(
            task_definition
                .volumes
                .iter()
                .map(|volume| json!({ "name": volume.name }))
                .collect(),
        )),
    );
    task.insert("skip_destroy".to_owned(), json!(true));
    if !options.tags.is_empty() {
        task.insert("tags".to_owned(), tags(options));
    }

    let settings = &service.settings;
    let mut ecs_service = Map::new();
    let autoscaled = autoscaling.is_some();
    ecs_service.insert(
        "//".to_owned(),
        json!(if autoscaled {
            "Application Auto Scaling owns desired_count (ignore_changes). A deployment is a change of the image variable and an apply; one that deploys with aws ecs update-service instead adds task_definition to ignore_changes."
        } else {
            "A deployment is a change of the image variable and an apply. One that deploys with aws ecs update-service instead adds task_definition to lifecycle.ignore_changes, or the next apply undoes it."
        }),
    );
    ecs_service.insert("name".to_owned(), string(&service.service_name));
    // The cluster's name, as the import id has it: a cluster ARN here against a name in the
    // imported state would plan a replacement.
    ecs_service.insert("cluster".to_owned(), reference("cluster"));
    ecs_service.insert(
        "task_definition".to_owned(),
        Value::String(format!("${{aws_ecs_task_definition.{name}.arn}}")),
    );
    ecs_service.insert("desired_count".to_owned(), json!(service.desired_count));
    if service.launch_type.is_some() {
        ecs_service.insert("launch_type".to_owned(), json!("FARGATE"));
    }
    if !settings.capacity_provider_strategy.is_empty() {
        ecs_service.insert(
            "capacity_provider_strategy".to_owned(),
            Value::Array(
                settings
                    .capacity_provider_strategy
                    .iter()
                    .map(|item| {
                        json!({
                            "capacity_provider": item.capacity_provider.as_str(),
                            "weight": item.weight,
                            "base": item.base,
                        })
                    })
                    .collect(),
            ),
        );
    }
    ecs_service.insert(
        "platform_version".to_owned(),
        string(&settings.platform_version),
    );
    ecs_service.insert("scheduling_strategy".to_owned(), json!("REPLICA"));
    ecs_service.insert(
        "deployment_controller".to_owned(),
        json!([{ "type": "ECS" }]),
    );
    let network = &settings.network_configuration.awsvpc_configuration;
    ecs_service.insert(
        "network_configuration".to_owned(),
        json!([{
            "subnets": reference("subnets"),
            "security_groups": reference("security_groups"),
            "assign_public_ip": reference("assign_public_ip"),
        }]),
    );
    ecs_service.insert(
        "load_balancer".to_owned(),
        Value::Array(
            settings
                .load_balancers
                .iter()
                .map(|binding| {
                    json!({
                        "target_group_arn": if binding.target_group_arn == options.load_balancer.target_group_arn {
                            reference("target_group_arn")
                        } else {
                            string(&binding.target_group_arn)
                        },
                        "container_name": string(&binding.container_name),
                        "container_port": binding.container_port,
                    })
                })
                .collect(),
        ),
    );
    ecs_service.insert(
        "health_check_grace_period_seconds".to_owned(),
        json!(settings.health_check_grace_period_seconds),
    );
    let deployment = &settings.deployment_configuration;
    ecs_service.insert(
        "deployment_circuit_breaker".to_owned(),
        json!([{
            "enable": deployment.deployment_circuit_breaker.enable,
            "rollback": deployment.deployment_circuit_breaker.rollback,
        }]),
    );
    ecs_service.insert(
        "deployment_maximum_percent".to_owned(),
        json!(deployment.maximum_percent),
    );
    ecs_service.insert(
        "deployment_minimum_healthy_percent".to_owned(),
        json!(deployment.minimum_healthy_percent),
    );
    ecs_service.insert(
        "enable_execute_command".to_owned(),
        json!(settings.enable_execute_command),
    );
    ecs_service.insert(
        "propagate_tags".to_owned(),
        json!(settings.propagate_tags.as_str()),
    );
    ecs_service.insert(
        "enable_ecs_managed_tags".to_owned(),
        json!(settings.enable_ecs_managed_tags),
    );
    ecs_service.insert(
        "availability_zone_rebalancing".to_owned(),
        json!(settings.availability_zone_rebalancing.as_str()),
    );
    if !options.tags.is_empty() {
        ecs_service.insert("tags".to_owned(), tags(options));
    }
    // An apply returns when the deployment is done, and fails when the circuit breaker rolled
    // it back.
    ecs_service.insert("wait_for_steady_state".to_owned(), json!(true));
    if autoscaled {
        ecs_service.insert(
            "lifecycle".to_owned(),
            json!([{ "ignore_changes": ["desired_count"] }]),
        );
    }

    let mut resources = Map::new();
    resources.insert(
        "aws_ecs_task_definition".to_owned(),
        json!({ name.clone(): task }),
    );
    resources.insert(
        "aws_ecs_service".to_owned(),
        json!({ name.clone(): ecs_service }),
    );
    let mut imports = vec![json!({
        "to": format!("aws_ecs_service.{name}"),
        "id": escape(&format!(
            "{}/{}",
            super::autoscaling::cluster_name(&service.cluster),
            service.service_name
        )),
    })];

    if let Some(vpc) = &options.load_balancer.vpc_id {
        resources.insert(
            "aws_lb_target_group".to_owned(),
            json!({ name.clone(): target_group_resource(
                options,
                vpc,
                *port,
                target_group_attributes,
                target_group_health_check,
            ) }),
        );
        imports.push(json!({
            "to": format!("aws_lb_target_group.{name}"),
            "id": escape(&options.load_balancer.target_group_arn),
        }));
    }

    if let Some(autoscaling) = autoscaling {
        let target = &autoscaling.target;
        resources.insert(
            "aws_appautoscaling_target".to_owned(),
            json!({ name.clone(): {
                "service_namespace": string(&target.service_namespace),
                "resource_id": format!(
                    "service/${{var.{name}_cluster}}/{}",
                    escape(&service.service_name)
                ),
                "scalable_dimension": string(&target.scalable_dimension),
                "min_capacity": target.min_capacity,
                "max_capacity": target.max_capacity,
                "depends_on": [format!("aws_ecs_service.{name}")],
            } }),
        );
        let mut policies = Map::new();
        for (suffix, policy) in std::iter::once(("cpu", &autoscaling.cpu))
            .chain(autoscaling.requests.iter().map(|p| ("requests", p)))
        {
            policies.insert(format!("{name}_{suffix}"), scaling_policy(&name, policy));
        }
        resources.insert(
            "aws_appautoscaling_policy".to_owned(),
            Value::Object(policies),
        );
    }

    let mut variables = Map::new();
    let mut variable = |suffix: &str, description: &str, type_: &str, default: Value| {
        variables.insert(
            var(suffix),
            json!({ "description": description, "type": type_, "default": default }),
        );
    };
    variable(
        "image",
        "The collab-server image the task runs (tag every build; a rollback is an apply with the previous tag).",
        "string",
        string(image),
    );
    variable(
        "cluster",
        "Name of the ECS cluster the service runs in.",
        "string",
        string(super::autoscaling::cluster_name(&service.cluster)),
    );
    variable(
        "subnets",
        "Subnets of the tasks (e.g. module.network.private_subnets).",
        "list(string)",
        literal(json!(network.subnets)),
    );
    variable(
        "security_groups",
        "Security groups of the tasks.",
        "list(string)",
        literal(json!(network.security_groups)),
    );
    variable(
        "assign_public_ip",
        "Give the tasks public IP addresses (public subnets without a NAT gateway).",
        "bool",
        json!(network.assign_public_ip.is_enabled()),
    );
    variable(
        "target_group_arn",
        "ARN of the ALB target group the service registers its tasks with.",
        "string",
        string(&options.load_balancer.target_group_arn),
    );
    variable(
        "execution_role_arn",
        "Task execution role: pulls the image, writes the logs, reads the secrets.",
        "string",
        string(&task_definition.execution_role_arn),
    );
    variable(
        "task_role_arn",
        "Task role of the server's own AWS calls (null: none).",
        "string",
        task_definition
            .task_role_arn
            .as_deref()
            .map_or(Value::Null, string),
    );
    if let Some(group) = log_group {
        variable(
            "log_group",
            "CloudWatch Logs group of the server's log.",
            "string",
            group,
        );
    }
    if !secret_arns.is_empty() {
        variable(
            "secret_arns",
            "ARN (Secrets Manager or SSM Parameter Store) of each secret variable of the server, by variable name: pass e.g. aws_secretsmanager_secret.jwt.arn.",
            "map(string)",
            Value::Object(secret_arns),
        );
    }

    let mut outputs = Map::new();
    outputs.insert(
        var("service_id"),
        json!({ "description": "ARN of the ECS service.", "value": format!("${{aws_ecs_service.{name}.id}}") }),
    );
    outputs.insert(
        var("service_name"),
        json!({ "description": "Name of the ECS service.", "value": format!("${{aws_ecs_service.{name}.name}}") }),
    );
    outputs.insert(
        var("task_definition_arn"),
        json!({ "description": "ARN of the task definition revision the service runs.", "value": format!("${{aws_ecs_task_definition.{name}.arn}}") }),
    );
    outputs.insert(
        var("task_definition_family"),
        json!({ "description": "Family of the task definition.", "value": format!("${{aws_ecs_task_definition.{name}.family}}") }),
    );
    outputs.insert(
        var("target_group_arn"),
        json!({ "description": "ARN of the target group the tasks register with.", "value": format!("${{var.{name}_target_group_arn}}") }),
    );

    let config = json!({
        "//": format!(
            "Written by collab-operator ecs render --format terraform for the ECS service {}; render again rather than edit. The image is the input that changes per deployment: terraform apply -var {image_variable}=IMAGE:TAG. The other variables default to ecs.yaml's values: a root module passes its own resources' attributes instead.",
            escape(&options.service)
        ),
        "terraform": {
            "required_version": ">= 1.5",
            "required_providers": {
                "aws": { "source": "hashicorp/aws", "version": ">= 5.0, < 7.0" }
            }
        },
        "variable": variables,
        "locals": { containers_local: containers },
        "resource": resources,
        "output": outputs,
    });
    Ok(Terraform {
        config,
        imports: json!({
            "//": "Adopts the existing resources of this service into the configuration beside this file (terraform plan shows the import; delete this file for a service that does not exist yet).",
            "import": imports,
        }),
    })
}

fn target_group_resource(
    options: &EcsOptions,
    vpc: &str,
    port: u16,
    attributes: &TargetGroupAttributes,
    health: &TargetGroupHealthCheck,
) -> Value {
    let attribute = |key: &str| {
        attributes
            .attributes
            .iter()
            .find(|attribute| attribute.key == key)
            .map(|attribute| attribute.value.clone())
            .unwrap_or_default()
    };
    json!({
        "//": "Name, port, protocol, target type and VPC must be the existing target group's: terraform plan must show an update in place, never a replacement.",
        "name": string(options.target_group_name()),
        "port": port,
        "protocol": "HTTP",
        "target_type": "ip",
        "vpc_id": string(vpc),
        "deregistration_delay": attribute(target_group::DEREGISTRATION_DELAY_KEY),
        "health_check": [{
            "enabled": health.health_check_enabled,
            "protocol": health.health_check_protocol,
            "port": health.health_check_port,
            "path": string(&health.health_check_path),
            "interval": health.health_check_interval_seconds,
            "timeout": health.health_check_timeout_seconds,
            "healthy_threshold": health.healthy_threshold_count,
            "unhealthy_threshold": health.unhealthy_threshold_count,
            "matcher": health.matcher.http_code,
        }],
        "stickiness": [{
            "enabled": attribute(target_group::STICKINESS_KEY) == "true",
            "type": "lb_cookie",
        }],
    })
}

fn scaling_policy(name: &str, policy: &ScalingPolicy) -> Value {
    let tracking = &policy.target_tracking_scaling_policy_configuration;
    let metric = &tracking.predefined_metric_specification;
    let mut specification = json!({ "predefined_metric_type": metric.predefined_metric_type });
    if let Some(label) = &metric.resource_label {
        specification["resource_label"] = string(label);
    }
    json!({
        "name": string(&policy.policy_name),
        "policy_type": "TargetTrackingScaling",
        "service_namespace": format!("${{aws_appautoscaling_target.{name}.service_namespace}}"),
        "resource_id": format!("${{aws_appautoscaling_target.{name}.resource_id}}"),
        "scalable_dimension": format!("${{aws_appautoscaling_target.{name}.scalable_dimension}}"),
        "target_tracking_scaling_policy_configuration": [{
            "target_value": tracking.target_value,
            "scale_in_cooldown": tracking.scale_in_cooldown,
            "scale_out_cooldown": tracking.scale_out_cooldown,
            "predefined_metric_specification": [specification],
        }],
    })
}
