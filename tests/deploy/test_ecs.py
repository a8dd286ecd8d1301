"""Offline checks of what `collab-operator ecs render` writes, against AWS's own API model: every
rendered directory (the committed zedi-dev deployment in deploy/ecs/ and the operator's ECS
golden files) validated with botocore's ECS model for RegisterTaskDefinition, CreateService and
UpdateService, its `elbv2` model for the target group inputs and its `application-autoscaling`
model for the autoscaling inputs, every enum value checked against the same models' shapes, and
what the model does
not know checked here: Fargate's cpu/memory table, its stopTimeout limit and nofile-only ulimits,
the secret ARN forms, and that the files fit together.

Run through scripts/test-deploy.sh, which provides the pinned packages.
"""

import copy
import json
import pathlib
import re

import botocore.session
import botocore.validate
import pytest
from botocore.exceptions import ParamValidationError

ROOT = pathlib.Path(__file__).resolve().parents[2]
RENDERED = sorted(
    path.parent
    for pattern in ("deploy/ecs/*/task-definition.json", "operator/tests/golden/ecs/*/task-definition.json")
    for path in ROOT.glob(pattern)
)
FILES = {
    "task-definition.json": "RegisterTaskDefinition",
    "service.json": "CreateService",
    "service-update.json": "UpdateService",
}
# Every directory has these too: (botocore service, operation).
OTHER_FILES = {
    "target-group-attributes.json": ("elbv2", "ModifyTargetGroupAttributes"),
    "target-group-health-check.json": ("elbv2", "ModifyTargetGroup"),
}
# Only an autoscaled CollabServer's directory has these.
AUTOSCALING_FILES = {
    "scalable-target.json": ("application-autoscaling", "RegisterScalableTarget"),
    "scaling-policy-cpu.json": ("application-autoscaling", "PutScalingPolicy"),
    "scaling-policy-requests.json": ("application-autoscaling", "PutScalingPolicy"),
}
EXTRA_INPUTS = [
    (directory, name, service, operation)
    for directory in RENDERED
    for name, (service, operation) in {**OTHER_FILES, **AUTOSCALING_FILES}.items()
    if (directory / name).is_file()
]

# Fargate Linux task sizes: CPU units -> allowed memory (MiB), from the AWS documentation
# ("Task CPU and memory"); written out independently of the Rust table it checks.
FARGATE_SIZES = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4096 + 1, 1024)),
    1024: set(range(2048, 8192 + 1, 1024)),
    2048: set(range(4096, 16384 + 1, 1024)),
    4096: set(range(8192, 30720 + 1, 1024)),
    8192: set(range(16384, 61440 + 1, 4096)),
    16384: set(range(32768, 122880 + 1, 8192)),
}
FARGATE_MAX_STOP_TIMEOUT = 120

SECRETS_MANAGER_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^:]+(:[^:]+:[^:]*:[^:]*)?$"
)
SSM_PARAMETER_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/.+$")


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("ecs")


@pytest.fixture(scope="module")
def models():
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in ("elbv2", "application-autoscaling")}


def load(directory, name):
    return json.loads((directory / name).read_text())


def ids(paths):
    return [str(path.relative_to(ROOT)) for path in paths]


def test_there_is_something_to_check():
    names = {path.name for path in RENDERED}
    assert {"zedi-dev", "collabserver", "hs256-ssm-parts"} <= names, names
    for directory in RENDERED:
        for name in [*FILES, *OTHER_FILES, "NOTES.md"]:
            assert (directory / name).is_file(), directory / name
    # The autoscaled golden case has every Application Auto Scaling input.
    [autoscaled] = [path for path in RENDERED if path.name == "collabserver"]
    for name in AUTOSCALING_FILES:
        assert (autoscaled / name).is_file(), autoscaled / name


@pytest.mark.parametrize(
    "directory,name,service,operation",
    EXTRA_INPUTS,
    ids=[f"{path.relative_to(ROOT)}/{name}" for path, name, _, _ in EXTRA_INPUTS],
)
def test_target_group_and_autoscaling_inputs_validate_against_their_models(models, directory, name, service, operation):
    params = load(directory, name)
    shape = models[service].operation_model(operation).input_shape
    botocore.validate.validate_parameters(params, shape)
    assert enum_violations(params, shape) == []


@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
def test_the_target_group_serves_health_drains_quickly_and_is_not_sticky(directory):
    service = load(directory, "service.json")
    [binding] = service["loadBalancers"]
    attributes = load(directory, "target-group-attributes.json")
    health = load(directory, "target-group-health-check.json")
    assert attributes["TargetGroupArn"] == health["TargetGroupArn"] == binding["targetGroupArn"]
    values = {item["Key"]: item["Value"] for item in attributes["Attributes"]}
    assert values == {"deregistration_delay.timeout_seconds": "30", "stickiness.enabled": "false"}
    assert health["HealthCheckPath"] == "/health" and health["Matcher"] == {"HttpCode": "200"}
    task = load(directory, "task-definition.json")
    [container] = task["containerDefinitions"]
    # The deregistration delay is over before SIGTERM; the task then has its whole stopTimeout.
    assert int(values["deregistration_delay.timeout_seconds"]) <= container["stopTimeout"]


def test_the_autoscaling_inputs_scale_the_service_they_were_rendered_with():
    [directory] = [path for path in RENDERED if path.name == "collabserver"]
    service = load(directory, "service.json")
    target = load(directory, "scalable-target.json")
    cluster = service["cluster"].rsplit("cluster/", 1)[-1]
    assert target["ResourceId"] == f"service/{cluster}/{service['serviceName']}"
    assert target["MinCapacity"] <= service["desiredCount"] <= target["MaxCapacity"]
    metrics = set()
    for name in ("scaling-policy-cpu.json", "scaling-policy-requests.json"):
        policy = load(directory, name)
        assert (policy["ResourceId"], policy["ScalableDimension"]) == (target["ResourceId"], target["ScalableDimension"])
        specification = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
        metrics.add(specification["PredefinedMetricType"])
        if specification["PredefinedMetricType"] == "ALBRequestCountPerTarget":
            [binding] = service["loadBalancers"]
            assert specification["ResourceLabel"].endswith(binding["targetGroupArn"].split(":targetgroup/")[1])
            assert specification["ResourceLabel"].startswith("app/")
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_the_container_health_check_waits_as_long_as_the_service_grace_period():
    for directory in RENDERED:
        task = load(directory, "task-definition.json")
        service = load(directory, "service.json")
        [container] = task["containerDefinitions"]
        # The Kubernetes startup probe allows 2 s x 60 = 120 s; ECS must not kill a task sooner.
        assert container["healthCheck"]["startPeriod"] == 120, directory
        if service["healthCheckGracePeriodSeconds"] < container["healthCheck"]["startPeriod"]:
            # ecs.yaml chose a shorter grace period: NOTES.md says what that risks.
            notes = (directory / "NOTES.md").read_text()
            assert "below the start-up window of 120 s" in notes, directory


def test_the_elbv2_validator_rejects_what_elbv2_would(models):
    shape = models["elbv2"].operation_model("ModifyTargetGroupAttributes").input_shape
    [directory] = [path for path in RENDERED if path.name == "zedi-dev"]
    attributes = load(directory, "target-group-attributes.json")
    attributes["Attributes"][0]["Value"] = 30
    with pytest.raises(ParamValidationError, match="Value"):
        botocore.validate.validate_parameters(attributes, shape)


@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
@pytest.mark.parametrize("name", FILES)
def test_validates_against_the_ecs_api_model(model, directory, name):
    params = load(directory, name)
    shape = model.operation_model(FILES[name]).input_shape
    # Raises ParamValidationError listing unknown keys, wrong types, missing members, ranges.
    botocore.validate.validate_parameters(params, shape)


def enum_violations(value, shape, path=""):
    """Every string of `value` whose shape in the model is an enum it is not a member of."""
    problems = []
    if shape.type_name == "structure":
        for key, member in value.items():
            problems += enum_violations(member, shape.members[key], f"{path}.{key}")
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            problems += enum_violations(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            problems += enum_violations(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        problems.append(f"{path}: {value!r} is not one of {shape.enum}")
    return problems


@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
@pytest.mark.parametrize("name", FILES)
def test_every_enum_value_is_one_the_model_lists(model, directory, name):
    params = load(directory, name)
    shape = model.operation_model(FILES[name]).input_shape
    assert enum_violations(params, shape) == []


@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
def test_the_task_definition_is_a_fargate_one(model, directory):
    task = load(directory, "task-definition.json")
    enum = lambda name: model.shape_for(name).enum  # noqa: E731
    assert task["networkMode"] == "awsvpc" and "awsvpc" in enum("NetworkMode")
    assert task["requiresCompatibilities"] == ["FARGATE"] and "FARGATE" in enum("Compatibility")
    assert task["runtimePlatform"]["operatingSystemFamily"] == "LINUX"
    assert task["runtimePlatform"]["cpuArchitecture"] in enum("CPUArchitecture")
    assert isinstance(task["cpu"], str) and isinstance(task["memory"], str)
    cpu, memory = int(task["cpu"]), int(task["memory"])
    assert memory in FARGATE_SIZES.get(cpu, set()), f"{cpu}/{memory} is not a Fargate task size"
    assert task["executionRoleArn"].startswith("arn:aws:iam::")

    [container] = task["containerDefinitions"]
    assert container["essential"] is True
    assert container["logConfiguration"]["logDriver"] == "awslogs" and "awslogs" in enum("LogDriver")
    options = container["logConfiguration"]["options"]
    assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(options)
    assert 0 < container["stopTimeout"] <= FARGATE_MAX_STOP_TIMEOUT
    assert [limit["name"] for limit in container["ulimits"]] == ["nofile"]  # the only one Fargate sets
    assert all(limit["name"] in enum("UlimitName") for limit in container["ulimits"])
    health = container["healthCheck"]
    # Exec form: the image has no shell and no curl.
    assert health["command"] == ["CMD", "/usr/local/bin/collab-server", "healthcheck"]
    assert 5 <= health["interval"] <= 300 and 2 <= health["timeout"] <= 60
    assert 1 <= health["retries"] <= 10 and 0 <= health["startPeriod"] <= 300
    # Read-only, unless ECS Exec's SSM agent must write (it comes with an init process).
    exec_enabled = load(directory, "service.json")["enableExecuteCommand"]
    assert container["readonlyRootFilesystem"] is (not exec_enabled)
    assert container.get("linuxParameters", {}).get("initProcessEnabled", False) is exec_enabled
    volumes = {volume["name"] for volume in task["volumes"]}
    assert {mount["sourceVolume"] for mount in container["mountPoints"]} <= volumes

    names = [item["name"] for item in container["environment"] + container.get("secrets", [])]
    assert len(names) == len(set(names)), "a variable is set twice"
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert int(environment["COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS"]) < container["stopTimeout"]
    assert int(environment["PORT"]) == container["portMappings"][0]["containerPort"]
    for secret in container.get("secrets", []):
        value_from = secret["valueFrom"]
        assert SECRETS_MANAGER_ARN.match(value_from) or SSM_PARAMETER_ARN.match(value_from), value_from


@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
def test_the_services_run_that_task_behind_the_target_group(model, directory):
    task = load(directory, "task-definition.json")
    [container] = task["containerDefinitions"]
    ports = {mapping["containerPort"] for mapping in container["portMappings"]}
    create = load(directory, "service.json")
    update = load(directory, "service-update.json")
    if "capacityProviderStrategy" in create:
        # A strategy replaces the launch type; the first task stays on demand.
        assert "launchType" not in create
        providers = [item["capacityProvider"] for item in create["capacityProviderStrategy"]]
        assert providers == ["FARGATE", "FARGATE_SPOT"]
        assert create["capacityProviderStrategy"][0]["base"] >= 1
        assert update["capacityProviderStrategy"] == create["capacityProviderStrategy"]
    else:
        assert create["launchType"] == "FARGATE" and "FARGATE" in model.shape_for("LaunchType").enum
    assert create["serviceName"] == update["service"] and create["cluster"] == update["cluster"]
    for service in (create, update):
        assert service["taskDefinition"] == task["family"]
        [binding] = service["loadBalancers"]
        assert binding["containerName"] == container["name"]
        assert binding["containerPort"] in ports
        assert ":targetgroup/" in binding["targetGroupArn"]
        network = service["networkConfiguration"]["awsvpcConfiguration"]
        assert network["subnets"] and network["securityGroups"]
        assert network["assignPublicIp"] in model.shape_for("AssignPublicIp").enum
        deployment = service["deploymentConfiguration"]
        assert deployment["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert deployment["minimumHealthyPercent"] == 100 and deployment["maximumPercent"] == 200
        assert service["healthCheckGracePeriodSeconds"] >= 0
    assert create["desiredCount"] >= 0
    if "desiredCount" in update:
        assert update["desiredCount"] == create["desiredCount"]


def test_the_validator_rejects_what_ecs_would(model):
    """The checks above are only worth something if botocore refuses bad input."""
    [directory] = [path for path in RENDERED if path.name == "zedi-dev"]
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    task = load(directory, "task-definition.json")

    as_number = copy.deepcopy(task)
    as_number["cpu"] = 512
    with pytest.raises(ParamValidationError, match="cpu"):
        botocore.validate.validate_parameters(as_number, shape)

    unknown = copy.deepcopy(task)
    unknown["containerDefinitions"][0]["comment"] = "not an API member"
    with pytest.raises(ParamValidationError, match="comment"):
        botocore.validate.validate_parameters(unknown, shape)

    bad_enum = copy.deepcopy(task)
    bad_enum["networkMode"] = "vpc"
    assert enum_violations(bad_enum, shape) == [".networkMode: 'vpc' is not one of " + str(model.shape_for("NetworkMode").enum)]


def test_the_zedi_dev_deployment_is_the_seeds():
    directory = ROOT / "deploy" / "ecs" / "zedi-dev"
    task = load(directory, "task-definition.json")
    service = load(directory, "service.json")
    [container] = task["containerDefinitions"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    secrets = {item["name"]: item["valueFrom"] for item in container["secrets"]}
    assert environment["PORT"] == "1234"
    assert environment["COGNITO_USER_POOL_ID"] == "ap-northeast-1_Q5fQJZkgd"
    assert environment["COGNITO_REGION"] == "ap-northeast-1"
    assert set(secrets) == {"DATABASE_URL", "REDIS_URL"}
    assert all(arn.startswith("arn:aws:secretsmanager:ap-northeast-1:590183877893:secret:") for arn in secrets.values())
    assert container["image"].startswith("590183877893.dkr.ecr.ap-northeast-1.amazonaws.com/zedi-dev-hocuspocus:")
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/aws/ecs/zedi-dev/hocuspocus"
    assert service["cluster"] == "zedi-dev-cluster"
    assert service["serviceName"] == "zedi-dev-hocuspocus"
