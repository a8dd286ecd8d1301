#!/usr/bin/env bash
# The document API against its OpenAPI document (docs/api.yaml) with schemathesis (PyPI):
# generated requests, including malformed ones, against a running collab-server (memory://,
# API on); every response must be a documented status with a body of the documented shape, and
# never a 5xx. Bounded by the number of examples (no time budget: it finishes the same way on
# a slow machine). Installs its pinned packages into target/pyenv-api on first use.
#
#   scripts/test-api.sh [path/to/collab-server]   (default: target/debug/collab-server)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'scripts/test-api.sh: %s\n' "$*" >&2; exit 1; }

BIN=${1:-target/debug/collab-server}
[ -x "$BIN" ] || die "no collab-server binary at $BIN: run cargo build first"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "missing python3: install it (e.g. apt-get install python3 python3-venv)"

VENV=target/pyenv-api
REQUIREMENTS=(schemathesis==4.32.5)
STAMP="$VENV/.requirements"
WANTED=$(printf '%s\n' "${REQUIREMENTS[@]}")
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" 2>/dev/null || die "could not create a venv with $PYTHON: install python3-venv"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANTED" ]; then
  echo "==> installing ${REQUIREMENTS[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" ||
    die "pip could not install ${REQUIREMENTS[*]} (is PyPI reachable?)"
  printf '%s\n' "$WANTED" >"$STAMP"
fi

PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
SECRET="schemathesis-$RANDOM$RANDOM"
LOG=$(mktemp "${TMPDIR:-/tmp}/collab-api-test.XXXXXX")
# No rate limit: schemathesis sends thousands of requests, which would mostly meet the 429
# (documented in docs/api.yaml, tested in server/tests/api.rs) instead of the routes.
COLLAB_SERVER_API_SECRET=$SECRET COLLAB_SERVER_API_MAX_BODY_BYTES=1048576 DATABASE_URL=memory:// \
  COLLAB_SERVER_API_RATE_PER_SEC=0 \
  "$BIN" --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 $PID 2>/dev/null || { cat "$LOG" >&2; die "collab-server exited"; }
  sleep 0.05
done

# Seed one document so reads and deletes of it reach their 200 paths too.
curl -sf -X PUT -H "Authorization: Bearer $SECRET" -d '{"t":"seed"}' \
  "http://127.0.0.1:$PORT/api/documents/seed?format=json" >/dev/null || die "could not seed a document"
# And a version of it (id 1 on a fresh memory:// store), so version reads reach theirs.
curl -sf -X POST -H "Authorization: Bearer $SECRET" \
  "http://127.0.0.1:$PORT/api/documents/seed/versions" >/dev/null || die "could not make a version"

"$VENV/bin/schemathesis" run docs/api.yaml \
  --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer $SECRET" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${COLLAB_TEST_API_EXAMPLES:-40}" \
  --workers 1 \
  --seed 1 \
  --suppress-health-check all ||
  { echo "--- server log ---" >&2; tail -n 50 "$LOG" >&2; die "schemathesis found responses that break docs/api.yaml"; }
kill -0 $PID 2>/dev/null || { cat "$LOG" >&2; die "collab-server died during the run"; }
