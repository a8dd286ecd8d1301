#!/usr/bin/env bash
# End-to-end test of collab-operator on a real cluster: kind, k3d, or any cluster KUBECONFIG
# points at. Not run in CI (no cluster there). It
#   1. (optionally) builds both images and loads them into kind or k3d,
#   2. installs the chart, applies deploy/examples/collabserver-kind.yaml,
#   3. waits for Available and checks what the operator wrote (children, owner references,
#      status, Events, no Secret value in the ConfigMap),
#   4. edits the referenced Secret and waits for the Deployment to roll,
#   5. applies a CollabServer without auth and checks it is rejected with a condition.
#
#   KIND_CLUSTER=kind tests/e2e/kind.sh      # build, kind load, test
#   K3D_CLUSTER=k3s-default tests/e2e/kind.sh
#   tests/e2e/kind.sh                        # images already pullable by the cluster
#
# Variables: OPERATOR_IMAGE, SERVER_IMAGE (default collab-operator:0.1.0, collab-server:0.1.0),
# E2E_NAMESPACE (collab-e2e), OPERATOR_NAMESPACE (collab-system), KEEP=1 to leave it installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

OPERATOR_IMAGE=${OPERATOR_IMAGE:-collab-operator:0.1.0}
SERVER_IMAGE=${SERVER_IMAGE:-collab-server:0.1.0}
NS=${E2E_NAMESPACE:-collab-e2e}
OPERATOR_NS=${OPERATOR_NAMESPACE:-collab-system}

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\ntests/e2e/kind.sh: FAILED: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1': $2"; }
need kubectl "install kubectl"
need helm "install Helm 3 or 4 (https://helm.sh/docs/intro/install/)"
kubectl version >/dev/null 2>&1 || die "no cluster reachable (check KUBECONFIG / kubectl config current-context)"

cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    helm uninstall collab-operator -n "$OPERATOR_NS" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

split_image() { repository=${1%:*}; tag=${1##*:}; }

if [ -n "${KIND_CLUSTER:-}" ] || [ -n "${K3D_CLUSTER:-}" ]; then
  need docker "install Docker to build the images"
  say "building $SERVER_IMAGE and $OPERATOR_IMAGE"
  docker build -f deploy/docker/server.Dockerfile -t "$SERVER_IMAGE" .
  docker build -f deploy/docker/operator.Dockerfile -t "$OPERATOR_IMAGE" .
  if [ -n "${KIND_CLUSTER:-}" ]; then
    need kind "install kind"
    kind load docker-image --name "$KIND_CLUSTER" "$SERVER_IMAGE" "$OPERATOR_IMAGE"
  else
    need k3d "install k3d"
    k3d image import --cluster "$K3D_CLUSTER" "$SERVER_IMAGE" "$OPERATOR_IMAGE"
  fi
fi

say "installing the chart into $OPERATOR_NS"
split_image "$OPERATOR_IMAGE"; operator_repository=$repository; operator_tag=$tag
split_image "$SERVER_IMAGE"
helm upgrade --install collab-operator charts/collab-operator \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="$operator_repository" --set image.tag="$operator_tag" \
  --set serverImage.repository="$repository" --set serverImage.tag="$tag" \
  --set logFormat=plain --wait --timeout 180s
# Helm installs the CRD only on first install; keep it current.
kubectl apply --server-side --force-conflicts -f crds/collabserver.yaml >/dev/null

say "applying the example CollabServer in $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" apply -f deploy/examples/collabserver-kind.yaml
kubectl -n "$NS" wait collab/collab --for=condition=Available --timeout=300s ||
  { kubectl -n "$NS" get collab collab -o yaml; die "collab/collab did not become Available"; }

say "checking what the operator wrote"
jsonpath() { kubectl -n "$NS" get "$1" -o "jsonpath=$2"; }
[ "$(jsonpath collab/collab '{.status.readyReplicas}')" = 1 ] || die "status.readyReplicas is not 1"
[ "$(jsonpath collab/collab '{.status.endpoint}')" = "ws://collab.$NS.svc:1234" ] || die "unexpected status.endpoint"
[ "$(jsonpath collab/collab '{.status.observedGeneration}')" = "$(jsonpath collab/collab '{.metadata.generation}')" ] ||
  die "status.observedGeneration lags metadata.generation"
for child in deployment/collab deployment/collab-redis service/collab service/collab-metrics \
  serviceaccount/collab-redis networkpolicy/collab-redis secret/collab-redis pvc/collab-data \
  poddisruptionbudget/collab; do
  [ "$(jsonpath "$child" '{.metadata.ownerReferences[0].kind}')" = CollabServer ] || die "$child is not owned by the CollabServer"
done
if kubectl -n "$NS" get deployment collab -o yaml | grep -q change-me; then
  die "the Deployment contains the JWT secret"
fi
kubectl -n "$NS" get configmap collab-config >/dev/null 2>&1 && die "the operator created a ConfigMap"
[ "$(jsonpath collab/collab '{.status.conditions[?(@.type=="Reconciled")].status}')" = True ] ||
  die "the Reconciled condition is not True"
kubectl -n "$NS" get events --field-selector reason=Applied -o name | grep -q . || die "no Applied event"

say "rotating the JWT Secret (labelled collab.zedi.dev/reload=true): the Deployment must roll"
before=$(jsonpath deployment/collab '{.spec.template.metadata.annotations.collab\.zedi\.dev/secret-versions}')
kubectl -n "$NS" patch secret collab-jwt --type merge -p '{"stringData":{"secret":"rotated-by-the-e2e-test"}}' >/dev/null
after=$before
for _ in $(seq 1 60); do
  after=$(jsonpath deployment/collab '{.spec.template.metadata.annotations.collab\.zedi\.dev/secret-versions}')
  [ "$after" != "$before" ] && break
  sleep 2
done
[ "$after" != "$before" ] || die "the Secret versions on the pod template did not change after the Secret changed"
kubectl -n "$NS" rollout status deployment/collab --timeout=300s
kubectl -n "$NS" wait collab/collab --for=condition=Available --timeout=120s

say "a CollabServer without auth is rejected at admission (CEL), not deployed"
if output=$(kubectl -n "$NS" apply -f - 2>&1 <<'YAML'
apiVersion: collab.zedi.dev/v1alpha1
kind: CollabServer
metadata:
  name: open
spec:
  replicas: 1
YAML
); then
  die "the API server accepted a CollabServer without auth: $output"
fi
echo "$output" | grep -q "auth" || die "the rejection does not name spec.auth: $output"
if kubectl -n "$NS" get deployment open >/dev/null 2>&1; then
  die "a Deployment was created for a CollabServer without auth"
fi

say "helm test: the operator's /health and the CRD"
helm test collab-operator --namespace "$OPERATOR_NS" --timeout 120s

say "e2e passed"
