"""Offline checks of the Compose dev stack (deploy/docker-compose.yaml) and the monitoring files
it mounts: Compose itself validates the file when a `docker-compose` binary is there
(scripts/test-deploy.sh installs Debian's when it can), Prometheus scrapes every collab-server
replica the stack runs, and Grafana's provisioning points at the dashboards it mounts.
The dashboards' queries are checked against the server's metrics by a Rust test
(server/src/metrics.rs, `dashboards_query_only_metrics_that_exist`).
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yaml"


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def collab_services(stack):
    return {
        name: service
        for name, service in stack["services"].items()
        if service.get("image", "").startswith("collab-server")
    }


def test_compose_validates_with_docker_compose():
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("COLLAB_TEST_REQUIRE_COMPOSE"):
            pytest.fail("docker-compose is missing (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_replicas_share_the_database_and_redis_and_have_distinct_names():
    replicas = collab_services(compose())
    assert len(replicas) >= 2, "the dev stack shows the Redis relay with two replicas"
    environments = [service["environment"] for service in replicas.values()]
    for key in ("DATABASE_URL", "REDIS_URL"):
        assert len({env[key] for env in environments}) == 1, f"{key} differs between replicas"
    ids = [env["COLLAB_SERVER_INSTANCE_ID"] for env in environments]
    assert len(set(ids)) == len(ids)
    host_ports = [port.split(":")[0] for service in replicas.values() for port in service["ports"]]
    assert len(set(host_ports)) == len(host_ports)


def test_prometheus_scrapes_every_replica():
    stack = compose()
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "collab-server")
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    assert targets == {f"{name}:1234" for name in collab_services(stack)}
    mounts = stack["services"]["prometheus"]["volumes"]
    assert any(mount.startswith("./prometheus/prometheus.yml:") for mount in mounts)


def test_grafana_provisions_the_mounted_dashboards():
    stack = compose()
    mounts = dict(mount.rsplit(":", 1)[0].split(":", 1) for mount in stack["services"]["grafana"]["volumes"])
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "collab.yaml").read_text())
    paths = {provider["options"]["path"] for provider in providers["providers"]}
    assert paths <= set(mounts.values()), (paths, mounts)
    for source, target in mounts.items():
        assert (DEPLOY / source).exists(), source
    dashboards = list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["panels"], path
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_image_is_built_once_and_the_stores_stay_off_the_host():
    """Issue 24, item 9: one build for both replicas (two `build:` of one tag built it twice),
    and PostgreSQL and Redis, with their known dev passwords, are not published on the host."""
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["collab-1"], builders
    assert services["collab-1"]["image"] == services["collab-2"]["image"]
    for store in ("postgres", "redis"):
        assert not services[store].get("ports"), f"{store} is published on the host"


def test_prometheus_loads_the_alert_rules():
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert all(rule.get("expr") and rule.get("alert") for group in rules["groups"] for rule in group["rules"])
