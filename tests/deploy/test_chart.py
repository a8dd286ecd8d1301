"""Offline checks of what the operator ships: the Helm chart (rendered and linted with Helm's
own SDK, every object validated against Kubernetes' schemas), the chart's CRD, the example
CollabServers (against the CRD's schema) and the operator's golden objects.

Run through scripts/test-deploy.sh, which provides the pinned packages.
"""

import copy
import json
import pathlib

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "collab-operator"
CRD = ROOT / "crds" / "collabserver.yaml"
KUBERNETES_VERSION = "1.33.0"
# Kinds kubernetes-validate has no schema for (CRDs); checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor", "CollabServer"}

NON_DEFAULT_VALUES = {
    "image": {"repository": "registry.example/collab-operator", "tag": "9.9.9", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "serverImage": {"repository": "registry.example/collab-server", "tag": "9.9.9"},
    "redisImage": "registry.example/redis:7",
    "logFilter": "collab_operator=debug,info",
    "logFormat": "plain",
    "podAnnotations": {"example.com/team": "collab"},
    "podLabels": {"team": "collab"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "serviceAccount": {"create": False, "name": "existing-operator"},
    "metrics": {
        "service": {"enabled": True},
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
    },
    "fullnameOverride": "collab-op",
}


def documents(text):
    return [document for document in yaml.safe_load_all(text) if document]


def render(values=None):
    chart = helm_python.Chart.load(str(CHART))
    manifests = chart.render(values, name="collab-operator", namespace="collab-system", is_install=True)
    objects = []
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            objects.extend(documents(text))
    return objects


def by_kind(objects):
    return {(item["kind"], item["metadata"]["name"]): item for item in objects}


def validate_kubernetes(item):
    kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("values", [None, NON_DEFAULT_VALUES], ids=["default", "non-default"])
def test_chart_lints_strictly(values):
    report = helm_python.lint(str(CHART), values, strict=True, kube_version="v" + KUBERNETES_VERSION)
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert not report["errors"] and not problems, json.dumps(report, indent=2)


@pytest.mark.parametrize("values", [None, NON_DEFAULT_VALUES], ids=["default", "non-default"])
def test_every_rendered_object_is_valid_kubernetes(values):
    objects = render(values)
    assert objects
    for item in objects:
        if item["kind"] in CUSTOM_KINDS:
            continue
        validate_kubernetes(item)


def test_default_render_is_the_least_that_runs_the_operator():
    objects = by_kind(render())
    assert set(objects) == {
        ("ServiceAccount", "collab-operator"),
        ("ClusterRole", "collab-operator"),
        ("ClusterRoleBinding", "collab-operator"),
        ("Deployment", "collab-operator"),
        ("Service", "collab-operator-metrics"),
    }
    deployment = objects[("Deployment", "collab-operator")]
    # The documented single-replica guarantee: no leader election, so never two at once.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "collab-operator:0.1.0"
    assert container["args"] == ["run"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["COLLAB_OPERATOR_SERVER_IMAGE"] == "collab-server:0.1.0"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_non_default_values_reach_the_objects():
    objects = by_kind(render(NON_DEFAULT_VALUES))
    assert ("ServiceAccount", "existing-operator") not in objects
    binding = objects[("ClusterRoleBinding", "collab-op")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "existing-operator", "namespace": "collab-system"}]
    pod = objects[("Deployment", "collab-op")]["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "collab"
    assert pod["spec"]["serviceAccountName"] == "existing-operator"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example/collab-operator:9.9.9"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["COLLAB_OPERATOR_SERVER_IMAGE"] == "registry.example/collab-server:9.9.9"
    assert env["COLLAB_OPERATOR_LOG_FORMAT"] == "plain"
    monitor = objects[("ServiceMonitor", "collab-op")]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_cluster_role_grants_no_wildcards_and_no_secret_escalation():
    role = by_kind(render())[("ClusterRole", "collab-operator")]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert not {"escalate", "bind", "impersonate", "update"} & set(rule["verbs"]), rule
    resources = {resource for rule in role["rules"] for resource in rule["resources"]}
    assert "collabservers/status" in resources and "pods" not in resources


def test_values_schema_rejects_what_the_chart_does_not_know():
    chart = helm_python.Chart.load(str(CHART))
    chart.validate_schema({})
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"replicas": 2})
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"logFormat": "xml"})


def test_chart_crd_is_the_committed_crd():
    chart = helm_python.Chart.load(str(CHART))
    crds = chart.crds
    assert len(crds) == 1
    assert crds[0]["data"] == CRD.read_text()
    validate_kubernetes(documents(CRD.read_text())[0])


def crd_schema():
    crd = documents(CRD.read_text())[0]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def example_documents():
    for path in sorted((ROOT / "deploy" / "examples").glob("*.yaml")):
        for item in documents(path.read_text()):
            yield path.name, item


def test_examples_are_valid_collab_servers():
    schema = crd_schema()
    seen = 0
    for name, item in example_documents():
        if item["kind"] == "CollabServer":
            assert item["apiVersion"] == "collab.zedi.dev/v1alpha1", name
            jsonschema.validate(item, schema)
            seen += 1
        else:
            validate_kubernetes(item)
    assert seen == 2


def test_crd_schema_rejects_a_broken_collab_server():
    schema = crd_schema()
    _, example = next((name, item) for name, item in example_documents() if item["kind"] == "CollabServer")
    for path, value in [(("spec", "replicas"), "two"), (("spec", "port"), 70000), (("spec", "auth", "jwtSecretRef"), {"name": "x"})]:
        broken = copy.deepcopy(example)
        target = broken
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_operator_golden_objects_are_valid_kubernetes():
    golden = sorted((ROOT / "operator" / "tests" / "golden").glob("*.yaml"))
    assert golden
    for path in golden:
        for item in documents(path.read_text()):
            if item["kind"] in CUSTOM_KINDS:
                assert item["apiVersion"] == "monitoring.coreos.com/v1"
                continue
            validate_kubernetes(item)
