"""Offline checks of what the operator ships: the Helm chart (rendered and linted with Helm's
own SDK in each mode: all namespaces or namespace mode, leader election on or off, CRD applied
on start; every object, `helm test` hooks included, validated against Kubernetes' schemas; its
RBAC rules; the CollabServer its NOTES.txt applies), the chart's CRD, the example CollabServers
(against the CRD's schema) and the operator's golden objects.

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
    "replicaCount": 3,
    "leaderElection": {"enabled": True, "leaseName": "collab-op-leader"},
    "watchNamespaces": ["team-a", "team-b"],
    "crds": {"applyOnStart": True},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "tests": {"image": "registry.example/busybox:1", "kubectlImage": "registry.example/kubectl:1"},
}
NAMESPACE_MODE = {"watchNamespaces": ["team-a", "team-b"]}
LEADER_ELECTION_OFF = {"leaderElection": {"enabled": False}, "replicaCount": 3}
APPLY_CRD = {"crds": {"applyOnStart": True}}
VALUE_SETS = {
    "default": None,
    "non-default": NON_DEFAULT_VALUES,
    "namespace-mode": NAMESPACE_MODE,
    "leader-election-off": LEADER_ELECTION_OFF,
    "apply-crd": APPLY_CRD,
}
CRD_NAME = "collabservers.collab.zedi.dev"

# Exactly what the operator calls in the namespaces it watches, as (apiGroup, resource, verb).
OPERATOR_RULES = {
    (group, resource, verb)
    for group, resource, verbs in [
        ("collab.zedi.dev", "collabservers", "list watch"),
        ("collab.zedi.dev", "collabservers/status", "patch"),
        ("collab.zedi.dev", "collabservers/finalizers", "update"),
        ("", "secrets", "get list watch create patch delete"),
        ("", "services", "list watch create patch delete"),
        ("", "configmaps", "list watch delete"),
        ("", "serviceaccounts", "list create patch delete"),
        ("", "persistentvolumeclaims", "get create patch"),
        ("apps", "deployments", "get list watch create patch delete"),
        ("policy", "poddisruptionbudgets", "list watch create patch delete"),
        ("autoscaling", "horizontalpodautoscalers", "list watch create patch delete"),
        ("networking.k8s.io", "networkpolicies", "list watch create patch delete"),
        ("networking.k8s.io", "ingresses", "list watch create patch delete"),
        ("monitoring.coreos.com", "servicemonitors", "list create patch delete"),
        ("events.k8s.io", "events", "create patch"),
    ]
    for verb in verbs.split()
}


def documents(text):
    return [document for document in yaml.safe_load_all(text) if document]


def render_manifests(values=None):
    chart = helm_python.Chart.load(str(CHART))
    return chart.render(values, name="collab-operator", namespace="collab-system", is_install=True)


def render(values=None):
    """Every rendered object, `helm test` hooks included."""
    objects = []
    for path, text in render_manifests(values).items():
        if path.endswith(".yaml"):
            objects.extend(documents(text))
    return objects


def is_test_hook(item):
    return item["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"


def release_objects(values=None):
    """What `helm install` creates (the objects without the `helm test` hooks)."""
    return by_kind([item for item in render(values) if not is_test_hook(item)])


def notes(values=None):
    return render_manifests(values)["collab-operator/templates/NOTES.txt"]


def rule_triples(rules):
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_container(objects, name="collab-operator"):
    return objects[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]


def env_of(container):
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def by_kind(objects):
    return {(item["kind"], item["metadata"]["name"]): item for item in objects}


def validate_kubernetes(item):
    kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_chart_lints_strictly(values):
    report = helm_python.lint(str(CHART), values, strict=True, kube_version="v" + KUBERNETES_VERSION)
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert not report["errors"] and not problems, json.dumps(report, indent=2)


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_every_rendered_object_is_valid_kubernetes(values):
    objects = render(values)
    assert objects
    for item in objects:
        if item["kind"] in CUSTOM_KINDS:
            continue
        validate_kubernetes(item)


def test_default_render_is_the_least_that_runs_the_operator():
    objects = release_objects()
    assert set(objects) == {
        ("ServiceAccount", "collab-operator"),
        ("ClusterRole", "collab-operator"),
        ("ClusterRoleBinding", "collab-operator"),
        ("Role", "collab-operator-leader-election"),
        ("RoleBinding", "collab-operator-leader-election"),
        ("Deployment", "collab-operator"),
        ("PodDisruptionBudget", "collab-operator"),
        ("Service", "collab-operator-metrics"),
    }
    deployment = objects[("Deployment", "collab-operator")]
    # Leader election by default: two replicas, the new pod up before an old one goes.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    container = operator_container(objects)
    assert container["image"] == "collab-operator:0.1.0"
    assert container["args"] == ["run"]
    env = env_of(container)
    assert env["COLLAB_OPERATOR_SERVER_IMAGE"] == "collab-server:0.1.0"
    assert env["COLLAB_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["COLLAB_OPERATOR_LEASE_NAME"] == "collab-operator"
    assert env["COLLAB_OPERATOR_LEASE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["COLLAB_OPERATOR_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["COLLAB_OPERATOR_APPLY_CRD"] == "false"
    # Every namespace: the variable is not set at all (empty means all).
    assert "COLLAB_OPERATOR_WATCH_NAMESPACES" not in env
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The replicas preferably on different nodes.
    pod = deployment["spec"]["template"]
    term = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    budget = objects[("PodDisruptionBudget", "collab-operator")]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_default_cluster_role_grants_exactly_what_the_operator_calls():
    objects = release_objects()
    role = objects[("ClusterRole", "collab-operator")]
    assert rule_triples(role["rules"]) == OPERATOR_RULES
    assert not any("resourceNames" in rule for rule in role["rules"])
    binding = objects[("ClusterRoleBinding", "collab-operator")]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "collab-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collab-operator", "namespace": "collab-system"}]


@pytest.mark.parametrize("values, lease", [(None, "collab-operator"), ({"leaderElection": {"leaseName": "my-lease"}}, "my-lease")])
def test_leader_election_role_grants_only_its_lease(values, lease):
    objects = release_objects(values)
    role = objects[("Role", "collab-operator-leader-election")]
    assert role["metadata"]["namespace"] == "collab-system"
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"], rule
    assert {verb for rule in role["rules"] for verb in rule["verbs"]} == {"get", "create", "update", "patch"}
    assert [rule["resourceNames"] for rule in role["rules"] if "resourceNames" in rule] == [[lease]]
    assert [rule["verbs"] for rule in role["rules"] if "resourceNames" not in rule] == [["create"]]
    binding = objects[("RoleBinding", "collab-operator-leader-election")]
    assert binding["metadata"]["namespace"] == "collab-system"
    assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == "collab-operator-leader-election"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collab-operator", "namespace": "collab-system"}]
    assert env_of(operator_container(objects))["COLLAB_OPERATOR_LEASE_NAME"] == lease


def test_leader_election_off_runs_exactly_one_replica_with_recreate():
    objects = release_objects(LEADER_ELECTION_OFF)
    deployment = objects[("Deployment", "collab-operator")]
    # replicaCount 3 is overridden: without a Lease, never two at once.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not {key for key in objects if key[0] in {"Role", "RoleBinding", "PodDisruptionBudget"}}
    env = env_of(operator_container(objects))
    assert env["COLLAB_OPERATOR_LEADER_ELECTION"] == "false"
    assert "COLLAB_OPERATOR_LEASE_NAME" not in env and "COLLAB_OPERATOR_LEASE_NAMESPACE" not in env
    assert "affinity" not in deployment["spec"]["template"]["spec"]


def test_pod_disruption_budget_only_with_several_replicas():
    assert ("PodDisruptionBudget", "collab-operator") in release_objects({"replicaCount": 2})
    assert ("PodDisruptionBudget", "collab-operator") not in release_objects({"replicaCount": 1})
    assert ("PodDisruptionBudget", "collab-operator") not in release_objects({"podDisruptionBudget": {"enabled": False}})
    budget = release_objects(NON_DEFAULT_VALUES)[("PodDisruptionBudget", "collab-op")]
    assert budget["spec"]["maxUnavailable"] == "50%"


def test_namespace_mode_grants_the_same_rules_per_namespace_and_nothing_cluster_wide():
    # The Roles share a name across namespaces: keyed here by (kind, namespace).
    raw = [item for item in render(NAMESPACE_MODE) if not is_test_hook(item)]
    per_namespace = {
        (item["kind"], item["metadata"]["namespace"]): item
        for item in raw
        if item["kind"] in {"Role", "RoleBinding"} and item["metadata"]["name"] == "collab-operator"
    }
    assert sorted(per_namespace) == [("Role", "team-a"), ("Role", "team-b"), ("RoleBinding", "team-a"), ("RoleBinding", "team-b")]
    assert len([item for item in raw if item["kind"] in {"Role", "RoleBinding"}]) == 6  # with the leader election's
    cluster_rules = release_objects()[("ClusterRole", "collab-operator")]["rules"]
    for namespace in ["team-a", "team-b"]:
        role = per_namespace[("Role", namespace)]
        # One template for both modes: the same rules, in the same order.
        assert role["rules"] == cluster_rules
        assert rule_triples(role["rules"]) == OPERATOR_RULES
        binding = per_namespace[("RoleBinding", namespace)]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "collab-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collab-operator", "namespace": "collab-system"}]
    assert not [item for item in raw if item["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    env = env_of(operator_container(by_kind(raw)))
    assert env["COLLAB_OPERATOR_WATCH_NAMESPACES"] == "team-a,team-b"


def test_namespace_mode_with_crd_apply_has_no_cluster_role_for_namespaced_resources():
    objects = release_objects(NON_DEFAULT_VALUES)
    cluster_roles = [item for (kind, _), item in objects.items() if kind == "ClusterRole"]
    assert [item["metadata"]["name"] for item in cluster_roles] == ["collab-op-crd"]
    for role in cluster_roles:
        assert {(group, resource) for group, resource, _ in rule_triples(role["rules"])} == {
            ("apiextensions.k8s.io", "customresourcedefinitions")
        }
    env = env_of(operator_container(objects, "collab-op"))
    assert env["COLLAB_OPERATOR_WATCH_NAMESPACES"] == "team-a,team-b"
    assert env["COLLAB_OPERATOR_LEASE_NAME"] == "collab-op-leader"
    assert objects[("Deployment", "collab-op")]["spec"]["replicas"] == 3


def test_crd_apply_on_start_grants_only_that_crd():
    assert not [key for key in release_objects() if key[1] == "collab-operator-crd"]
    objects = release_objects(APPLY_CRD)
    role = objects[("ClusterRole", "collab-operator-crd")]
    assert [(rule["apiGroups"], rule["resources"], rule.get("resourceNames"), rule["verbs"]) for rule in role["rules"]] == [
        (["apiextensions.k8s.io"], ["customresourcedefinitions"], None, ["create"]),
        (["apiextensions.k8s.io"], ["customresourcedefinitions"], [CRD_NAME], ["get", "patch"]),
    ]
    binding = objects[("ClusterRoleBinding", "collab-operator-crd")]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "collab-operator-crd"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collab-operator", "namespace": "collab-system"}]
    assert env_of(operator_container(objects))["COLLAB_OPERATOR_APPLY_CRD"] == "true"
    # The CRD the chart ships is the one the role names.
    assert documents(CRD.read_text())[0]["metadata"]["name"] == CRD_NAME


def test_non_default_values_reach_the_objects():
    objects = by_kind(render(NON_DEFAULT_VALUES))
    assert ("ServiceAccount", "existing-operator") not in objects
    for key in [("ClusterRoleBinding", "collab-op-crd"), ("RoleBinding", "collab-op-leader-election"), ("RoleBinding", "collab-op")]:
        subjects = [{"kind": "ServiceAccount", "name": "existing-operator", "namespace": "collab-system"}]
        assert objects[key]["subjects"] == subjects, key
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


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_roles_grant_no_wildcards_and_no_escalation(values):
    roles = [item for item in render(values) if item["kind"] in {"Role", "ClusterRole"}]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            # update only on the Lease (leader election renews it with update) and on
            # collabservers/finalizers, which writes nothing: clusters enforcing owner-reference
            # permissions require it to set blockOwnerDeletion on a CollabServer's children.
            if "update" in rule["verbs"]:
                assert (rule["resources"] == ["leases"] and rule.get("resourceNames")) or (
                    rule["resources"] == ["collabservers/finalizers"] and rule["verbs"] == ["update"]
                ), rule
            assert "pods" not in rule["resources"], rule


def test_values_schema_rejects_what_the_chart_does_not_know():
    chart = helm_python.Chart.load(str(CHART))
    chart.validate_schema({})
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"replicas": 2})
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"logFormat": "xml"})


SCHEMA_CASES = [
    # (key, accepted, rejected)
    ("replicaCount", [1, 3], ["2", 0, 1.5]),
    ("leaderElection", [{"enabled": False}, {"leaseName": "a.b-c"}, {"leaseName": ""}],
     [{"enabled": "yes"}, {"leaseName": "Bad_Name"}, {"leaseName": 1}, {"lease": "x"}]),
    ("watchNamespaces", [[], ["team-a"], ["a", "b"]], ["team-a", ["Team"], ["a", "a"], [""], [1]]),
    ("crds", [{"applyOnStart": True}], [{"applyOnStart": "true"}, {"install": True}]),
    ("podDisruptionBudget", [{"enabled": False}, {"maxUnavailable": 2}, {"maxUnavailable": "25%"}],
     [{"enabled": 1}, {"maxUnavailable": 0}, {"maxUnavailable": "one"}]),
    ("topologySpreadConstraints", [[{"maxSkew": 1}]], [{"maxSkew": 1}, ["x"]]),
    ("tests", [{"image": "busybox:1", "kubectlImage": "kubectl:1"}], [{"image": ""}, {"image": 1}, {"kubectl": "x"}]),
]


@pytest.mark.parametrize("key, accepted, rejected", SCHEMA_CASES, ids=[case[0] for case in SCHEMA_CASES])
def test_values_schema_types_the_new_values(key, accepted, rejected):
    chart = helm_python.Chart.load(str(CHART))
    for value in accepted:
        chart.validate_schema({key: value})
    for value in rejected:
        with pytest.raises(helm_python.HelmError):
            chart.validate_schema({key: value})
            pytest.fail(f"accepted {key}: {value!r}")


def hook_objects(values=None):
    return by_kind([item for item in render(values) if is_test_hook(item)])


def test_helm_test_hooks_check_health_and_the_crd():
    hooks = hook_objects()
    assert set(hooks) == {
        ("Pod", "collab-operator-test-health"),
        ("Pod", "collab-operator-test-crd"),
        ("ServiceAccount", "collab-operator-test-crd"),
        ("ClusterRole", "collab-operator-test-crd"),
        ("ClusterRoleBinding", "collab-operator-test-crd"),
    }
    operator_pod = release_objects()[("Deployment", "collab-operator")]["spec"]["template"]["spec"]
    operator_security = operator_pod["containers"][0]["securityContext"]
    for name in ["collab-operator-test-health", "collab-operator-test-crd"]:
        pod = hooks[("Pod", name)]
        assert pod["spec"]["restartPolicy"] == "Never"
        # Locked down like the operator's pod.
        assert pod["spec"]["securityContext"] == operator_pod["securityContext"]
        assert [container["securityContext"] for container in pod["spec"]["containers"]] == [operator_security]
        validate_kubernetes(pod)
    health = hooks[("Pod", "collab-operator-test-health")]
    container = health["spec"]["containers"][0]
    assert container["image"] == "busybox:1.37"
    assert container["command"][0] == "wget"
    service = release_objects()[("Service", "collab-operator-metrics")]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert container["command"][-1] == "http://collab-operator-metrics.collab-system.svc:8080/health"
    assert health["spec"]["automountServiceAccountToken"] is False
    crd_pod = hooks[("Pod", "collab-operator-test-crd")]
    assert crd_pod["spec"]["serviceAccountName"] == "collab-operator-test-crd"
    assert crd_pod["spec"]["containers"][0]["command"][:4] == [
        "kubectl", "get", "customresourcedefinitions.apiextensions.k8s.io", CRD_NAME
    ]
    role = hooks[("ClusterRole", "collab-operator-test-crd")]
    assert role["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "resourceNames": [CRD_NAME], "verbs": ["get"]}
    ]
    binding = hooks[("ClusterRoleBinding", "collab-operator-test-crd")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collab-operator-test-crd", "namespace": "collab-system"}]
    # The RBAC exists before the pod runs.
    for key in [("ServiceAccount", "collab-operator-test-crd"), ("ClusterRole", "collab-operator-test-crd"), ("ClusterRoleBinding", "collab-operator-test-crd")]:
        annotations = hooks[key]["metadata"]["annotations"]
        assert int(annotations["helm.sh/hook-weight"]) < 0
        # ... and is gone after the tests passed (Helm never deletes hooks on uninstall).
        assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"].split(",")


def test_helm_test_images_are_values_and_health_needs_the_metrics_service():
    hooks = hook_objects(NON_DEFAULT_VALUES)
    assert hooks[("Pod", "collab-op-test-health")]["spec"]["containers"][0]["image"] == "registry.example/busybox:1"
    assert hooks[("Pod", "collab-op-test-crd")]["spec"]["containers"][0]["image"] == "registry.example/kubectl:1"
    assert hooks[("Pod", "collab-op-test-crd")]["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    without_service = hook_objects({"metrics": {"service": {"enabled": False}}})
    assert ("Pod", "collab-operator-test-health") not in without_service
    assert ("Pod", "collab-operator-test-crd") in without_service


def notes_collab_server(text):
    """The CollabServer of the NOTES' `kubectl apply -f - <<EOF` heredoc."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.rstrip().endswith("apply -f - <<EOF"))
    end = next(index for index in range(start + 1, len(lines)) if lines[index] == "EOF")
    return lines[start], documents("\n".join(lines[start + 1:end]))


def unknown_fields(item, schema, path=""):
    """Fields the schema does not declare (the API server would prune them silently)."""
    found = []
    if isinstance(item, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        if properties is None:
            return found
        for key, value in item.items():
            if key not in properties:
                found.append(f"{path}.{key}")
            else:
                found.extend(unknown_fields(value, properties[key], f"{path}.{key}"))
    return found


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_notes_example_is_a_valid_collab_server(values):
    command, example = notes_collab_server(notes(values))
    assert len(example) == 1
    server = example[0]
    assert server["apiVersion"] == "collab.zedi.dev/v1alpha1" and server["kind"] == "CollabServer"
    assert server["spec"] == {"auth": {"allowAnonymous": True}}
    schema = crd_schema()
    jsonschema.validate(server, schema)
    assert not unknown_fields({"spec": server["spec"]}, schema)
    # In namespace mode, in a namespace the operator watches.
    if values and values.get("watchNamespaces"):
        assert f"-n {values['watchNamespaces'][0]} apply" in command
    else:
        assert " -n " not in command


def test_notes_name_only_what_the_chart_package_contains():
    text = notes()
    # Paths of the repository, not of the chart package.
    assert "deploy/examples" not in text and "crds/collabserver.yaml" not in text and "docs/" not in text
    assert "-f deploy/" not in text and ".yaml" not in text
    assert "helm show crds <chart> --version 0.1.0 | kubectl apply --server-side --force-conflicts -f -" in text
    assert "crds.applyOnStart=true" in text
    assert "Leader election is on: 2 replica(s)" in text and "get lease collab-operator" in text
    assert "in every namespace" in text
    namespaced = notes(NAMESPACE_MODE)
    assert "only in the namespaces\nteam-a, team-b" in namespaced and "in every namespace" not in namespaced
    assert "Leader election is off" in notes(LEADER_ELECTION_OFF)
    applying = notes(APPLY_CRD)
    assert "crds.applyOnStart is true" in applying and "helm show crds" not in applying


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


def test_the_alert_rules_ship_as_a_prometheus_rule():
    """Issue 24, item 5: the chart installs deploy/prometheus/alerts.yml as a PrometheusRule when
    asked (and nothing of the kind by default)."""
    assert not [item for item in render() if item["kind"] == "PrometheusRule"]
    [rule] = [
        item
        for item in render({"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "prom"}}}})
        if item["kind"] == "PrometheusRule"
    ]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prom"
    shipped = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    assert rule["spec"] == shipped
    alerts = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert "CollabServerDependencyDown" in alerts and len(alerts) >= 10, alerts
