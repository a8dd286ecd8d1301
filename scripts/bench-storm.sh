#!/usr/bin/env bash
# Reconnect storm on a large document (issue 15, goal 5): preload one document with 120,000
# small updates (about 1 MB of state), then 500 fresh clients connect to it at once. Reports,
# per run: server CPU seconds of the storm, peak RSS growth over the RSS before it (VmHWM is
# reset first, so the preload's own peak does not count), handshake p50/p99 and the time until
# all 500 are synced. The preload is not rate-limited (collab-server runs with its per-socket
# rate limits off, as Hocuspocus has none). Same machine, same run, for each peer given (default: collab hocuspocus4).
#
#   scripts/bench-storm.sh [REPS] [PEER...]     COLLAB_SERVER_BIN overrides the collab binary
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=${BENCH_HARNESS:-$ROOT/bench}
[ -d "$SRC/loadgen" ] || { echo "bench-storm: harness not found at $SRC (set BENCH_HARNESS)" >&2; exit 1; }
REPS=${1:-3}
shift || true
PEERS=("$@")
[ ${#PEERS[@]} -gt 0 ] || PEERS=(collab hocuspocus4)
UPDATES=${UPDATES:-120000}
CLIENTS=${CLIENTS:-500}
OUT=${OUT:-$ROOT/target/bench/storm.jsonl}
H=$ROOT/target/bench/harness
mkdir -p "$H" "$(dirname "$OUT")"
tar -C "$SRC" --exclude=./loadgen/target --exclude=./limit/target --exclude=node_modules \
  --exclude=./results/scratch -cf - . | tar -C "$H" --skip-old-files -xf -
cargo build --release --quiet --manifest-path "$H/loadgen/Cargo.toml"
LOADGEN=$H/loadgen/target/release/loadgen
BIN=${COLLAB_SERVER_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet -p collab-server
  BIN=$ROOT/target/release/collab-server
fi
ulimit -n 65536 2>/dev/null || true

start_peer() {
  local peer=$1 port=$2
  case "$peer" in
    collab) taskset -c 1 "$BIN" --host 127.0.0.1 --port "$port" --database-url "${COLLAB_BENCH_DATABASE_URL:-memory://}" \
              --demo false --log-level warn --rate-messages-per-sec 0 --rate-bytes-per-sec 0 >/dev/null 2>&1 & ;;
    hocuspocus4|hocuspocus2)
      [ -d "$H/peers/$peer/node_modules" ] || (cd "$H/peers/$peer" && npm ci --no-audit --no-fund --loglevel=error)
      (cd "$H/peers/$peer" && PORT=$port HOST=127.0.0.1 exec taskset -c 1 node server.mjs) >/dev/null 2>&1 & ;;
    *) echo "bench-storm: unknown peer $peer" >&2; exit 2 ;;
  esac
  PID=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench-storm: $peer did not listen" >&2; exit 1
}

# The peer's own process (hocuspocus runs under a subshell: take its child).
server_pid() { pgrep -P "$1" | head -n 1 || echo "$1"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for peer in "${PEERS[@]}"; do
  for rep in $(seq "$REPS"); do
    port=$((20000 + RANDOM % 20000))
    start_peer "$peer" "$port"
    spid=$PID
    [ "$peer" = collab ] || spid=$(server_pid "$PID")
    doc="storm$rep$RANDOM"
    taskset -c 0 "$LOADGEN" preload --url "ws://127.0.0.1:$port" --doc "$doc-0" --updates "$UPDATES" >/dev/null
    sleep 2
    echo 5 > "/proc/$spid/clear_refs" 2>/dev/null || true
    rss0=$(status_kb "$spid" VmRSS); cpu0=$(cpu_ticks "$spid")
    # The loadgen's own CPU (user + system seconds): what bounds the storm when it is near the
    # time until all are synced (every client receives and decodes the whole document).
    lgtime=$(mktemp)
    result=$( { TIMEFORMAT='%U %S'; time taskset -c 0 "$LOADGEN" connect --url "ws://127.0.0.1:$port" --doc-prefix "$doc" \
      --clients "$CLIENTS" --docs 1 --concurrency "$CLIENTS" --settle 1 --timeout 60 --server-pid "$spid"; } 2>"$lgtime")
    lgcpu=$(awk '{ print $1 + $2 }' "$lgtime"); rm -f "$lgtime"
    hwm=$(status_kb "$spid" VmHWM); cpu1=$(cpu_ticks "$spid")
    kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
    python3 - "$peer" "$rss0" "$hwm" "$cpu0" "$cpu1" "$result" "$OUT" "$lgcpu" <<'PY'
import json, os, sys
peer, rss0, hwm, cpu0, cpu1, result, out, lgcpu = sys.argv[1:]
r = json.loads(result)["results"]
tick = os.sysconf("SC_CLK_TCK")
line = {"peer": peer, "ok": r["ok"], "failed": r["failed"],
        "cpu_s": round((int(cpu1) - int(cpu0)) / tick, 2),
        "rss_before_mb": round(int(rss0) / 1024, 1), "peak_rss_mb": round(int(hwm) / 1024, 1),
        "peak_growth_mb": round((int(hwm) - int(rss0)) / 1024, 1),
        "handshake_p50_ms": r["handshake_ms"].get("p50"), "handshake_p99_ms": r["handshake_ms"].get("p99"),
        "all_synced_s": r["total_s"], "loadgen_cpu_s": float(lgcpu)}
print(json.dumps(line))
with open(out, "a") as f:
    f.write(json.dumps(line) + "\n")
PY
  done
done
