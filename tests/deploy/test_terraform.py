"""Terraform itself validates what `collab-operator ecs render --format terraform` writes: every
rendered directory's `*.tf.json` (the committed zedi-dev deployment in deploy/ecs/ and the
operator's ECS golden files), copied to a temporary directory, gets `terraform init` from a
local plugin directory (no network) and `terraform validate`, which knows every argument and
block of the hashicorp/aws provider's resources.

Needs `terraform` on the PATH and a provider mirror: the plugin directory is the parent of the
`registry.terraform.io` directory that `find / -maxdepth 3 -type d -name registry.terraform.io`
finds (or TF_PLUGIN_DIR). Without either the tests are skipped, and say why.
"""

import json
import os
import re
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RENDERED = sorted(
    path.parent
    for pattern in ("deploy/ecs/*/collab-server.tf.json", "operator/tests/golden/ecs/*/collab-server.tf.json")
    for path in ROOT.glob(pattern)
)


def find_plugin_dir():
    """The directory to pass to `terraform init -plugin-dir`, or None."""
    given = os.environ.get("TF_PLUGIN_DIR")
    if given:
        return pathlib.Path(given) if (pathlib.Path(given) / "registry.terraform.io").is_dir() else None
    try:
        found = subprocess.run(
            ["find", "/", "-maxdepth", "3", "-type", "d", "-name", "registry.terraform.io"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for path in map(pathlib.Path, found):
        if (path / "hashicorp" / "aws").is_dir():
            return path.parent
    return None


TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = find_plugin_dir() if TERRAFORM else None
SKIP_REASON = (
    "terraform is not on the PATH: install Terraform >= 1.5 to validate the rendered *.tf.json"
    if not TERRAFORM
    else "no Terraform provider mirror with hashicorp/aws: `find / -maxdepth 3 -type d -name "
    "registry.terraform.io` found none (or set TF_PLUGIN_DIR to the directory holding registry.terraform.io)"
)
needs_terraform = pytest.mark.skipif(PLUGIN_DIR is None, reason=SKIP_REASON)


def terraform(directory, *args):
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull}
    return subprocess.run(
        [TERRAFORM, *args, "-no-color"], cwd=directory, capture_output=True, text=True, env=env, timeout=300, check=False
    )


def validate(source_files, tmp_path):
    """`terraform init` offline and `terraform validate -json` in a copy; the parsed report."""
    for path in source_files:
        shutil.copy(path, tmp_path / path.name)
    init = terraform(tmp_path, "init", "-backend=false", "-input=false", f"-plugin-dir={PLUGIN_DIR}")
    assert init.returncode == 0, init.stdout + init.stderr
    result = terraform(tmp_path, "validate", "-json")
    return json.loads(result.stdout)


def ids(paths):
    return [str(path.relative_to(ROOT)) for path in paths]


def test_there_is_terraform_to_validate():
    names = {path.name for path in RENDERED}
    assert {"zedi-dev", "collabserver", "hs256-ssm-parts"} <= names, names
    for directory in RENDERED:
        assert (directory / "imports.tf.json").is_file(), directory
        assert not (directory / ".terraform").exists(), f"{directory}: a .terraform directory was committed"


@needs_terraform
@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
def test_terraform_validates_the_rendered_configuration(directory, tmp_path):
    report = validate(sorted(directory.glob("*.tf.json")), tmp_path)
    assert report["valid"], json.dumps(report["diagnostics"], indent=2)
    assert report["warning_count"] == 0, json.dumps(report["diagnostics"], indent=2)


@needs_terraform
def test_terraform_validate_rejects_what_the_provider_does_not_know(tmp_path):
    """The check above is only worth something if validate refuses bad configuration."""
    [directory] = [path for path in RENDERED if path.name == "zedi-dev"]
    config = json.loads((directory / "collab-server.tf.json").read_text())
    [service] = config["resource"]["aws_ecs_service"].values()
    service["enable_exec"] = True  # the argument is enable_execute_command
    (tmp_path / "collab-server.tf.json").write_text(json.dumps(config))
    report = validate([], tmp_path)
    assert not report["valid"]
    assert any("enable_exec" in (item.get("detail", "") + item.get("summary", "")) for item in report["diagnostics"]), report


VARIABLE = re.compile(r'^\$\{var\.([A-Za-z0-9_]+)(?:\["([^"]+)"\])?\}$')


def resolved(value, variables):
    """`value` with every `${var.x}` / `${var.x["k"]}` replaced by the variable's default."""
    if isinstance(value, str):
        match = VARIABLE.match(value)
        if match:
            default = variables[match.group(1)]["default"]
            return default[match.group(2)] if match.group(2) else default
        return value
    if isinstance(value, list):
        return [resolved(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: resolved(item, variables) for key, item in value.items()}
    return value


def test_the_terraform_service_is_the_cli_service():
    """Both formats come from one rendering: the Terraform arguments match the CLI JSON."""
    for directory in RENDERED:
        config = json.loads((directory / "collab-server.tf.json").read_text())
        imports = json.loads((directory / "imports.tf.json").read_text())["import"]
        cli = json.loads((directory / "service.json").read_text())
        task = json.loads((directory / "task-definition.json").read_text())
        [(name, service)] = config["resource"]["aws_ecs_service"].items()
        variables = config["variable"]
        network = resolved(service["network_configuration"][0], variables)
        awsvpc = cli["networkConfiguration"]["awsvpcConfiguration"]
        assert network["subnets"] == awsvpc["subnets"]
        assert network["security_groups"] == awsvpc["securityGroups"]
        assert network["assign_public_ip"] == (awsvpc["assignPublicIp"] == "ENABLED")
        assert resolved(service["load_balancer"][0]["target_group_arn"], variables) == cli["loadBalancers"][0]["targetGroupArn"]
        assert service["name"] == cli["serviceName"]
        assert service["desired_count"] == cli["desiredCount"]
        assert service["health_check_grace_period_seconds"] == cli["healthCheckGracePeriodSeconds"]
        assert service["enable_execute_command"] == cli["enableExecuteCommand"]
        assert service["propagate_tags"] == cli["propagateTags"]
        assert service["availability_zone_rebalancing"] == cli["availabilityZoneRebalancing"]
        assert service["task_definition"] == f"${{aws_ecs_task_definition.{name}.arn}}"
        [containers] = config["locals"].values()
        containers = resolved(containers, variables)
        for rendered, expected in zip(containers, task["containerDefinitions"], strict=True):
            assert {key: value for key, value in rendered.items() if key != "image"} == {
                key: value for key, value in expected.items() if key != "image"
            }
        assert variables[f"{name}_image"]["default"] == task["containerDefinitions"][0]["image"]
        cluster = cli["cluster"].rsplit("cluster/", 1)[-1]
        assert {"to": f"aws_ecs_service.{name}", "id": f"{cluster}/{cli['serviceName']}"} in imports
        autoscaled = (directory / "scalable-target.json").is_file()
        assert ("aws_appautoscaling_target" in config["resource"]) is autoscaled
        if autoscaled:
            assert service["lifecycle"] == [{"ignore_changes": ["desired_count"]}]


# A provider that makes no AWS call: enough for `terraform plan -refresh=false` of resources to
# create (imports need the account, so imports.tf.json stays out of this copy).
OFFLINE_PROVIDER = {
    "provider": {
        "aws": {
            "region": "ap-northeast-1",
            "access_key": "offline",
            "secret_key": "offline",
            "skip_credentials_validation": True,
            "skip_requesting_account_id": True,
            "skip_metadata_api_check": True,
            "skip_region_validation": True,
        }
    }
}


def offline_plan(directory, tmp_path, *args):
    """The JSON of an offline `terraform plan` of the rendered configuration (no imports)."""
    shutil.copy(directory / "collab-server.tf.json", tmp_path / "collab-server.tf.json")
    (tmp_path / "provider.tf.json").write_text(json.dumps(OFFLINE_PROVIDER))
    init = terraform(tmp_path, "init", "-backend=false", "-input=false", f"-plugin-dir={PLUGIN_DIR}")
    assert init.returncode == 0, init.stdout + init.stderr
    plan = terraform(tmp_path, "plan", "-refresh=false", "-input=false", "-out=plan.tfplan", *args)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    show = terraform(tmp_path, "show", "-json", "plan.tfplan")
    assert show.returncode == 0, show.stderr
    return json.loads(show.stdout)


@needs_terraform
@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
def test_the_provider_plans_the_container_of_the_cli_task_definition(directory, tmp_path):
    """The provider itself evaluates the configuration: what it would register is the container
    list of task-definition.json, and every declared resource is planned for creation."""
    config = json.loads((directory / "collab-server.tf.json").read_text())
    plan = offline_plan(directory, tmp_path)
    changes = {change["address"]: change["change"] for change in plan["resource_changes"]}
    declared = {f"{kind}.{name}" for kind, resources in config["resource"].items() for name in resources}
    assert set(changes) == declared
    assert all(change["actions"] == ["create"] for change in changes.values()), changes
    [task] = [change["after"] for address, change in changes.items() if address.startswith("aws_ecs_task_definition.")]
    expected = json.loads((directory / "task-definition.json").read_text())
    # The provider stores environment variables and secrets sorted by name (their order means
    # nothing to ECS).
    def normalized(containers):
        by_name = lambda item: item["name"]  # noqa: E731
        return [
            {
                **container,
                "environment": sorted(container["environment"], key=by_name),
                "secrets": sorted(container.get("secrets", []), key=by_name),
            }
            for container in containers
        ]
    assert normalized(json.loads(task["container_definitions"])) == normalized(expected["containerDefinitions"])
    assert (task["family"], task["cpu"], task["memory"]) == (expected["family"], expected["cpu"], expected["memory"])
    # Strings Terraform would read as templates (a tag "${...}", a key "%{...}") arrive literally.
    tags = {item["key"]: item["value"] for item in expected.get("tags", [])}
    [service] = [change["after"] for address, change in changes.items() if address.startswith("aws_ecs_service.")]
    assert (task.get("tags") or {}) == tags
    assert (service.get("tags") or {}) == tags


@needs_terraform
def test_a_deployment_is_the_image_variable(tmp_path):
    [directory] = [path for path in RENDERED if path.name == "zedi-dev"]
    [variable] = [name for name in json.loads((directory / "collab-server.tf.json").read_text())["variable"] if name.endswith("_image")]
    image = "590183877893.dkr.ecr.ap-northeast-1.amazonaws.com/zedi-dev-hocuspocus:0.1.1"
    plan = offline_plan(directory, tmp_path, "-var", f"{variable}={image}")
    [task] = [change["change"]["after"] for change in plan["resource_changes"] if change["type"] == "aws_ecs_task_definition"]
    [container] = json.loads(task["container_definitions"])
    assert container["image"] == image


# A root module of a team's existing Terraform estate: its own network, security group, roles,
# log group, secrets and target group, passed to the rendered configuration used as a module.
ROOT_MODULE = {
    "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws"}}},
    "provider": OFFLINE_PROVIDER["provider"],
    "resource": {
        "aws_vpc": {"main": {"cidr_block": "10.20.0.0/16"}},
        "aws_subnet": {
            "a": {"vpc_id": "${aws_vpc.main.id}", "cidr_block": "10.20.1.0/24"},
            "b": {"vpc_id": "${aws_vpc.main.id}", "cidr_block": "10.20.2.0/24"},
        },
        "aws_security_group": {"tasks": {"vpc_id": "${aws_vpc.main.id}", "name": "collab-tasks"}},
        "aws_ecs_cluster": {"apps": {"name": "apps"}},
        "aws_iam_role": {
            "execution": {"name": "collab-execution", "assume_role_policy": "${jsonencode({Version = \"2012-10-17\", Statement = []})}"},
        },
        "aws_cloudwatch_log_group": {"collab": {"name": "/ecs/collab"}},
        "aws_lb_target_group": {
            "collab": {"name": "collab", "port": 1234, "protocol": "HTTP", "target_type": "ip", "vpc_id": "${aws_vpc.main.id}"}
        },
        "aws_secretsmanager_secret": {"secret": {"name": "collab/secret"}},
    },
}


@needs_terraform
@pytest.mark.parametrize("directory", RENDERED, ids=ids(RENDERED))
def test_the_configuration_plugs_into_an_existing_estate_as_a_module(directory, tmp_path):
    """Issue 24, item 4: every piece of infrastructure is a variable a root module can set from
    its own resources; the outputs are what it references back. Validated by Terraform."""
    config = json.loads((directory / "collab-server.tf.json").read_text())
    variables = config["variable"]
    [name] = config["resource"]["aws_ecs_service"]
    module = tmp_path / "collab"
    module.mkdir()
    # Import blocks belong to the root module only: a module copy leaves imports.tf.json out.
    shutil.copy(directory / "collab-server.tf.json", module / "collab-server.tf.json")
    arguments = {
        "source": "./collab",
        f"{name}_cluster": "${aws_ecs_cluster.apps.name}",
        f"{name}_subnets": ["${aws_subnet.a.id}", "${aws_subnet.b.id}"],
        f"{name}_security_groups": ["${aws_security_group.tasks.id}"],
        f"{name}_assign_public_ip": False,
        f"{name}_target_group_arn": "${aws_lb_target_group.collab.arn}",
        f"{name}_execution_role_arn": "${aws_iam_role.execution.arn}",
        f"{name}_image": "registry.example/collab-server:9.9.9",
    }
    if f"{name}_log_group" in variables:
        arguments[f"{name}_log_group"] = "${aws_cloudwatch_log_group.collab.name}"
    if f"{name}_secret_arns" in variables:
        arguments[f"{name}_secret_arns"] = {key: "${aws_secretsmanager_secret.secret.arn}" for key in variables[f"{name}_secret_arns"]["default"]}
    for required in ("cluster", "subnets", "security_groups", "target_group_arn", "execution_role_arn", "task_role_arn"):
        assert f"{name}_{required}" in variables, f"{required} is not a variable"
    root = {
        **ROOT_MODULE,
        "module": {"collab": arguments},
        "output": {"service": {"value": f"${{module.collab.{name}_service_id}}"}},
    }
    (tmp_path / "main.tf.json").write_text(json.dumps(root))
    assert config["terraform"]["required_providers"]["aws"]["version"]
    report = validate([], tmp_path)
    assert report["valid"], json.dumps(report["diagnostics"], indent=2)
