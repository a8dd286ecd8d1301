#!/usr/bin/env bash
# Offline checks of the operator's deployment artifacts, in Python:
#   the Helm chart rendered and strictly linted with PyPI helm-python-sdk (Helm's own SDK),
#   every rendered object and every operator golden object validated with kubernetes-validate
#   (strict, Kubernetes 1.33), the chart's CRD against crds/collabserver.yaml, the example
#   CollabServers against the CRD's openAPI schema, the Compose dev stack
#   (deploy/docker-compose.yaml, validated by docker-compose when it is there), and the ECS
#   task and service definitions of `collab-operator ecs render` (deploy/ecs/, the operator's
#   ECS golden files) against botocore's ECS, elbv2 and application-autoscaling API models, and
#   their Terraform output (`--format terraform`) by `terraform validate`, offline: `terraform`
#   from the PATH, hashicorp/aws from a local plugin directory (the parent of what
#   `find / -maxdepth 3 -type d -name registry.terraform.io` finds, or TF_PLUGIN_DIR); the
#   Terraform checks are skipped, with the reason printed, when either is missing.
#
# The packages are pinned and installed into a venv under target/pyenv (created on first use).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'scripts/test-deploy.sh: %s\n' "$*" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 ||
  die "missing python3 (3.10 or newer): install it (e.g. apt-get install python3 python3-venv), or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  die "$("$PYTHON" --version 2>&1) is too old: helm-python-sdk needs Python 3.10 or newer (set PYTHON=...)"

VENV=target/pyenv
REQUIREMENTS=(
  helm-python-sdk==0.2.2
  kubernetes-validate==1.37.0
  botocore==1.44.8
  jsonschema==4.26.0
  pyyaml==6.0.4
  pytest==9.0.2
)
STAMP="$VENV/.requirements"
WANTED=$(printf '%s\n' "${REQUIREMENTS[@]}")

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" 2>/dev/null ||
    die "could not create a venv with $PYTHON: install the venv module (e.g. apt-get install python3-venv)"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANTED" ]; then
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 ||
    die "pip is missing in $VENV: install it (e.g. apt-get install python3-pip), then rm -rf $VENV and rerun"
  echo "==> installing ${REQUIREMENTS[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" ||
    die "pip could not install ${REQUIREMENTS[*]} (is PyPI reachable?)"
  printf '%s\n' "$WANTED" >"$STAMP"
fi

# Compose validates deploy/docker-compose.yaml without an engine (Debian's docker-compose).
if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian's docker-compose (to validate deploy/docker-compose.yaml)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; } ||
      echo "scripts/test-deploy.sh: could not install docker-compose; the Compose file check is skipped" >&2
  else
    echo "scripts/test-deploy.sh: docker-compose not found; the Compose file check is skipped" >&2
  fi
fi

echo "==> deployment artifacts (tests/deploy)"
exec "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider tests/deploy "$@"
