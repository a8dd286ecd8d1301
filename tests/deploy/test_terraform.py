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


def test_the_terraform_service_is_the_cli_service():
    """Both formats come from one rendering: the Terraform arguments match the CLI JSON."""
    for directory in RENDERED:
        config = json.loads((directory / "collab-server.tf.json").read_text())
        imports = json.loads((directory / "imports.tf.json").read_text())["import"]
        cli = json.loads((directory / "service.json").read_text())
        task = json.loads((directory / "task-definition.json").read_text())
        [(name, service)] = config["resource"]["aws_ecs_service"].items()
        assert service["name"] == cli["serviceName"]
        assert service["desired_count"] == cli["desiredCount"]
        assert service["health_check_grace_period_seconds"] == cli["healthCheckGracePeriodSeconds"]
        assert service["enable_execute_command"] == cli["enableExecuteCommand"]
        assert service["propagate_tags"] == cli["propagateTags"]
        assert service["availability_zone_rebalancing"] == cli["availabilityZoneRebalancing"]
        assert service["task_definition"] == f"${{aws_ecs_task_definition.{name}.arn}}"
        [containers] = config["locals"].values()
        for rendered, expected in zip(containers, task["containerDefinitions"], strict=True):
            assert {key: value for key, value in rendered.items() if key != "image"} == {
                key: value for key, value in expected.items() if key != "image"
            }
        [variable] = config["variable"].values()
        assert variable["default"] == task["containerDefinitions"][0]["image"]
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
    [variable] = json.loads((directory / "collab-server.tf.json").read_text())["variable"]
    image = "590183877893.dkr.ecr.ap-northeast-1.amazonaws.com/zedi-dev-hocuspocus:0.1.1"
    plan = offline_plan(directory, tmp_path, "-var", f"{variable}={image}")
    [task] = [change["change"]["after"] for change in plan["resource_changes"] if change["type"] == "aws_ecs_task_definition"]
    [container] = json.loads(task["container_definitions"])
    assert container["image"] == image
