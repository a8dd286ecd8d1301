//! `NOTES.md`, written next to the JSON: what the ECS API inputs cannot say (they allow no
//! comments and no unknown keys): the commands, the target group and ALB settings the
//! deployment relies on, the execution role's permissions and the spec fields ECS ignores.

use std::collections::BTreeSet;

use super::autoscaling::{self, Autoscaling};
use super::options::{EcsOptions, check_value_from};
use super::target_group::{self, DEREGISTRATION_DELAY_SECONDS};
use super::task_definition::TaskDefinition;
use super::terraform;
use crate::crd::CollabServer;
use crate::server_contract;
use crate::validate::{Scaling, ValidatedCollabServer};

/// The ALB's default idle timeout, in seconds.
const ALB_DEFAULT_IDLE_TIMEOUT_SECONDS: i64 = 60;

pub struct Facts<'a> {
    pub spec: &'a CollabServer,
    pub server: &'a ValidatedCollabServer,
    pub options: &'a EcsOptions,
    pub task_definition: &'a TaskDefinition,
    pub desired_count: i32,
    pub autoscaling: Option<&'a Autoscaling>,
}

/// The keepalive interval the server runs with: the CollabServer's `env`, else the default.
fn keepalive_seconds(server: &ValidatedCollabServer) -> i64 {
    server
        .extra_env
        .iter()
        .find(|variable| variable.name == server_contract::env::KEEPALIVE_SECS)
        .and_then(|variable| variable.value.as_deref())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(server_contract::DEFAULT_KEEPALIVE_SECONDS)
}

pub fn notes(facts: &Facts<'_>) -> String {
    let Facts {
        spec,
        server,
        options,
        task_definition,
        desired_count,
        autoscaling,
    } = facts;
    let region = &options.region;
    let cluster = &options.cluster;
    let service = &options.service;
    let family = options.family();
    let target_group = &options.load_balancer.target_group_arn;
    let stop_timeout = task_definition
        .container_definitions
        .first()
        .map_or(0, |container| container.stop_timeout);
    let shutdown = server.shutdown.server_timeout_seconds;
    let keepalive = keepalive_seconds(server);

    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("# {service} on ECS Fargate"));
    line(String::new());
    line(format!(
        "Written by `collab-operator ecs render` with the AWS CLI inputs (`--format cli`: \
         `task-definition.json`, `service.json`, `service-update.json`, `{}`, `{}`{}) or the \
         Terraform configuration (`--format terraform`: `{}`, `{}`), from the CollabServer \
         `{}`; render again rather than edit them. The renderer reads nothing from AWS: the ids \
         and ARNs are the ones `ecs.yaml` gives.",
        target_group::ATTRIBUTES_FILE,
        target_group::HEALTH_CHECK_FILE,
        if autoscaling.is_some() {
            format!(
                ", `{}`, `{}`{}",
                autoscaling::SCALABLE_TARGET_FILE,
                autoscaling::CPU_POLICY_FILE,
                if autoscaling.is_some_and(|scaling| scaling.requests.is_some()) {
                    format!(", `{}`", autoscaling::REQUESTS_POLICY_FILE)
                } else {
                    String::new()
                }
            )
        } else {
            String::new()
        },
        terraform::CONFIG_FILE,
        terraform::IMPORTS_FILE,
        server.name
    ));
    line(String::new());
    line("## Deploy".to_owned());
    line(String::new());
    line("```sh".to_owned());
    line(format!(
        "aws ecs register-task-definition --region {region} --cli-input-json file://task-definition.json"
    ));
    line(format!(
        "# an existing service (takes the newest revision of {family}):"
    ));
    line(format!(
        "aws ecs update-service --region {region} --cli-input-json file://service-update.json"
    ));
    line("# or a new one:".to_owned());
    line(format!(
        "aws ecs create-service --region {region} --cli-input-json file://service.json"
    ));
    line(format!(
        "aws ecs wait services-stable --region {region} --cluster {cluster} --services {service}"
    ));
    line("```".to_owned());
    line(String::new());
    line("With Terraform (the configuration that created the service):".to_owned());
    line(String::new());
    line("```sh".to_owned());
    line(format!(
        "# beside the existing configuration: {} {}",
        terraform::CONFIG_FILE,
        terraform::IMPORTS_FILE
    ));
    line("terraform plan -out collab.tfplan   # the service: import and update in place, never replace".to_owned());
    line("terraform apply collab.tfplan".to_owned());
    line(format!(
        "terraform apply -var {}_image=IMAGE:TAG   # each later deployment",
        terraform::resource_name(service)
    ));
    line("```".to_owned());
    line(String::new());
    line(format!(
        "The container health check ignores failures for {start} s after a task starts and the \
         service ignores the target group's for {grace} s: the server's start-up window \
         (migrations run before it listens), the same two minutes its Kubernetes startup probe \
         allows.",
        start = task_definition
            .container_definitions
            .first()
            .map_or(0, |container| container.health_check.start_period),
        grace = options.health_check_grace_period_seconds(),
    ));
    if options.health_check_grace_period_seconds() < server_contract::STARTUP_SECONDS {
        line(String::new());
        line(format!(
            "**ecs.yaml sets `healthCheckGracePeriodSeconds` {} below the start-up window of {} \
             s**: a task still running migrations may fail the target group's health check and \
             be replaced before it listens. Leave it out unless the server starts faster.",
            options.health_check_grace_period_seconds(),
            server_contract::STARTUP_SECONDS
        ));
    }
    line(String::new());
    line(format!(
        "The deployment circuit breaker stops a deployment whose tasks keep failing and rolls back \
         to the last one that completed. To go back by hand: `aws ecs update-service --region \
         {region} --cluster {cluster} --service {service} --task-definition {family}:REVISION`. \
         ECS reads secrets when a task starts: after changing one, `aws ecs update-service \
         --region {region} --cluster {cluster} --service {service} --force-new-deployment`."
    ));
    line(String::new());

    line("## Load balancer settings".to_owned());
    line(String::new());
    line(format!(
        "The service only refers to the target group; these settings live on it and on the ALB \
         (the commands below, or Terraform). Target group `{target_group}`:"
    ));
    line(String::new());
    line(format!(
        "- target type `ip`, protocol HTTP, port {}; health check path `{}` (200 while the \
         process runs). `{}` also answers 503 while the server drains or cannot reach its \
         database or Redis, but ECS replaces tasks that fail the target group's check, so keep \
         `{}` there.",
        server.port,
        server_contract::HEALTH_PATH,
        server_contract::READY_PATH,
        server_contract::HEALTH_PATH
    ));
    line(format!(
        "- deregistration delay (`deregistration_delay.timeout_seconds`) {DEREGISTRATION_DELAY_SECONDS} s \
         instead of the default 300 s. ECS sends SIGTERM only once the target has drained, and \
         WebSocket connections do not drain by themselves: with 300 s every task that stops \
         waits five minutes, then the ALB closes its sockets anyway. Clients reconnect to the \
         other tasks at once; then the server stores every document within its shutdown \
         timeout of {shutdown} s, {} s before the container's stopTimeout of {stop_timeout} s.",
        stop_timeout - shutdown
    ));
    if server.redis.is_some() {
        line(
            "- stickiness off: `REDIS_URL` relays updates and awareness between tasks, so any \
             task can serve any document."
                .to_owned(),
        );
    }
    line(String::new());
    line("```sh".to_owned());
    line(format!(
        "aws elbv2 modify-target-group-attributes --region {region} --cli-input-json file://{}",
        target_group::ATTRIBUTES_FILE
    ));
    line(format!(
        "aws elbv2 modify-target-group --region {region} --cli-input-json file://{}",
        target_group::HEALTH_CHECK_FILE
    ));
    line("```".to_owned());
    line(String::new());
    line(if options.load_balancer.vpc_id.is_some() {
        format!(
            "In Terraform, `{}` declares the target group with these settings (imported by `{}`).",
            terraform::CONFIG_FILE,
            terraform::IMPORTS_FILE
        )
    } else {
        "In Terraform, set them on the existing `aws_lb_target_group` (or give `loadBalancer.vpcId` \
         in ecs.yaml: the rendered configuration then declares and imports the target group)."
            .to_owned()
    });
    line(String::new());
    line(format!(
        "The ALB's idle timeout (`idle_timeout.timeout_seconds`, default \
         {ALB_DEFAULT_IDLE_TIMEOUT_SECONDS} s) must stay above the server's keepalive interval \
         of {keepalive} s (`{}`): every idle socket gets a frame at least that often, so the ALB \
         never closes a live one. Keep the default; never set it below {} s.",
        server_contract::env::KEEPALIVE_SECS,
        2 * keepalive
    ));
    line(String::new());

    line(format!(
        "## Permissions of the execution role `{}`",
        options.execution_role_arn
    ));
    line(String::new());
    line(
        "The managed policy `AmazonECSTaskExecutionRolePolicy` (pull from ECR, write to \
         CloudWatch Logs), and:"
            .to_owned(),
    );
    line(String::new());
    if options.logs.create_group {
        line(format!(
            "- `logs:CreateLogGroup` (ecs.yaml `logs.createGroup`) for `{}`",
            options.logs.group
        ));
    }
    let mut secrets_manager = BTreeSet::new();
    let mut parameters = BTreeSet::new();
    for secret in task_definition
        .container_definitions
        .iter()
        .flat_map(|container| &container.secrets)
    {
        match check_value_from(&secret.value_from) {
            Ok(source @ super::options::SecretSource::SsmParameter { .. }) => {
                parameters.insert(source.resource_arn().to_owned());
            }
            Ok(source) => {
                secrets_manager.insert(source.resource_arn().to_owned());
            }
            Err(_) => {}
        }
    }
    for (action, arns) in [
        ("secretsmanager:GetSecretValue", &secrets_manager),
        ("ssm:GetParameters", &parameters),
    ] {
        if !arns.is_empty() {
            line(format!("- `{action}` on"));
            for arn in arns {
                line(format!("  - `{arn}`"));
            }
        }
    }
    line("- `kms:Decrypt` on the keys of those secrets, if they are customer-managed".to_owned());
    line(String::new());

    if let Scaling::Autoscaled {
        min_replicas,
        max_replicas,
        target_cpu_utilization_percentage,
        ..
    } = server.scaling
    {
        line("## Autoscaling".to_owned());
        line(String::new());
        line(format!(
            "The CollabServer autoscales ({min_replicas}-{max_replicas} tasks at \
             {target_cpu_utilization_percentage}% CPU). On ECS that is Application Auto Scaling: \
             `service.json` starts {desired_count} tasks, and `service-update.json` leaves the \
             count alone (in Terraform, `lifecycle.ignore_changes` on `desired_count`)."
        ));
        line(String::new());
        line("```sh".to_owned());
        line(format!(
            "aws application-autoscaling register-scalable-target --region {region} --cli-input-json file://{}",
            autoscaling::SCALABLE_TARGET_FILE
        ));
        line(format!(
            "aws application-autoscaling put-scaling-policy --region {region} --cli-input-json file://{}",
            autoscaling::CPU_POLICY_FILE
        ));
        if autoscaling.is_some_and(|scaling| scaling.requests.is_some()) {
            line(format!(
                "aws application-autoscaling put-scaling-policy --region {region} --cli-input-json file://{}",
                autoscaling::REQUESTS_POLICY_FILE
            ));
        }
        line("```".to_owned());
        line(String::new());
        if autoscaling.is_some_and(|scaling| scaling.requests.is_none()) {
            line(
                "To scale on ALB requests per target as well (each WebSocket connection is one \
                 request), give `autoscaling.requestsPerTarget` and `loadBalancer.loadBalancerArn` \
                 in ecs.yaml."
                    .to_owned(),
            );
            line(String::new());
        }
    }

    if let Some(spot) = &options.fargate_spot {
        line("## Fargate Spot".to_owned());
        line(String::new());
        line(format!(
            "{} on demand, the rest {}:{} on `FARGATE` and `FARGATE_SPOT`. The cluster needs \
             both capacity providers: `aws ecs put-cluster-capacity-providers --region {region} \
             --cluster {cluster} --capacity-providers FARGATE FARGATE_SPOT \
             --default-capacity-provider-strategy capacityProvider=FARGATE,weight=1` (the list \
             replaces the cluster's: name every provider it keeps). A Spot task gets SIGTERM two \
             minutes before it is reclaimed: its clients reconnect to the other tasks and it \
             stores every document within its shutdown timeout.",
            match spot.on_demand_base {
                0 => "No task is kept".to_owned(),
                1 => "The first task runs".to_owned(),
                base => format!("The first {base} tasks run"),
            },
            spot.on_demand_weight,
            spot.spot_weight
        ));
        line(String::new());
    }

    if options.enable_execute_command {
        line("## ECS Exec".to_owned());
        line(String::new());
        line(format!(
            "`enableExecuteCommand` is on, with an init process and a writable root filesystem \
             (the SSM agent writes to it). The task role `{}` needs `ssmmessages:CreateControlChannel`, \
             `ssmmessages:CreateDataChannel`, `ssmmessages:OpenControlChannel` and \
             `ssmmessages:OpenDataChannel`. The image has no shell: run the binary itself, e.g. \
             `aws ecs execute-command --region {region} --cluster {cluster} --task TASK_ID \
             --interactive --command \"{} healthcheck\"`.",
            options.task_role_arn.as_deref().unwrap_or(""),
            server_contract::SERVER_BINARY
        ));
        line(String::new());
    }

    let ignored = ignored_fields(spec, options);
    if !ignored.is_empty() {
        line("## CollabServer fields ECS does not use".to_owned());
        line(String::new());
        for text in ignored {
            line(format!("- {text}"));
        }
        line(String::new());
    }

    line("## The container's environment".to_owned());
    line(String::new());
    for container in &task_definition.container_definitions {
        for variable in &container.environment {
            line(format!("- `{}`: `{}`", variable.name, variable.value));
        }
        for secret in &container.secrets {
            line(format!("- `{}`: from `{}`", secret.name, secret.value_from));
        }
    }
    // Exactly one final newline.
    let mut text = out.trim_end().to_owned();
    text.push('\n');
    text
}

/// The CollabServer's Kubernetes-only fields that are set, with what ECS does instead.
fn ignored_fields(spec: &CollabServer, options: &EcsOptions) -> Vec<String> {
    let spec = &spec.spec;
    let mut ignored = Vec::new();
    if spec.resources.is_some() {
        ignored.push(format!(
            "`spec.resources`: the task size is ecs.yaml's cpu {} and memory {} MiB.",
            options.cpu, options.memory
        ));
    }
    if spec.image_pull_policy.is_some() || !spec.image_pull_secrets.is_empty() {
        ignored.push(
            "`spec.imagePullPolicy`, `spec.imagePullSecrets`: every task pulls its image, from \
             ECR with the execution role."
                .to_owned(),
        );
    }
    if spec.pod_disruption_budget.is_some() {
        ignored.push(
            "`spec.podDisruptionBudget`: deployments start new tasks before stopping old ones \
             (minimumHealthyPercent 100)."
                .to_owned(),
        );
    }
    if spec.monitoring.is_some() {
        ignored.push(format!(
            "`spec.monitoring`: there is no ServiceMonitor; scrape port {} (`{}`) with the \
             CloudWatch agent or Amazon Managed Service for Prometheus.",
            server_contract::METRICS_PORT,
            server_contract::METRICS_PATH
        ));
    }
    if spec.service.is_some() {
        ignored.push("`spec.service`: clients come through the ALB's target group.".to_owned());
    }
    if spec.pod_template.is_some() {
        ignored.push(
            "`spec.podTemplate`: Fargate places tasks in the subnets' availability zones."
                .to_owned(),
        );
    }
    if spec.paused {
        ignored.push("`spec.paused`: nothing on ECS watches the spec.".to_owned());
    }
    if spec.ingress.as_ref().is_some_and(|ingress| ingress.enabled) {
        ignored.push(
            "`spec.ingress`: clients come through the ALB; its listener holds the host, the path \
             and the TLS certificate."
                .to_owned(),
        );
    }
    if spec
        .network_policy
        .as_ref()
        .is_some_and(|policy| policy.enabled)
    {
        ignored.push(
            "`spec.networkPolicy`: on ECS the task's security groups (ecs.yaml) decide who \
             reaches it."
                .to_owned(),
        );
    }
    if let Some(autoscaling) = spec.autoscaling.as_ref().filter(|a| a.enabled)
        && (autoscaling
            .scale_down_stabilization_window_seconds
            .is_some()
            || autoscaling.connections_per_pod.is_some())
    {
        ignored.push(
            "`spec.autoscaling.scaleDownStabilizationWindowSeconds`, `connectionsPerPod`: ECS \
             scales on CPU with ecs.yaml's scale-in cooldown."
                .to_owned(),
        );
    }
    ignored
}
