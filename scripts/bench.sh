#!/usr/bin/env bash
# Benchmarks collab-server side by side with Hocuspocus 4 and `limit` (the machine's floor),
# in one session, with the shared harness (../shared/bench, see its README).
#
#   scripts/bench.sh [reps] [peers...]        defaults: 5 reps; peers collab hocuspocus4 limit
#   SCENARIOS="throughput connect fanout fanout500" scripts/bench.sh 5
#   SCENARIOS=pg COLLAB_BENCH_DATABASE_URL=postgres://… scripts/bench.sh 3 collab
#     PostgreSQL storage: update-to-acknowledgement p50/p99 under the throughput scenario
#     (tests/compat/bench/pg-ack.mjs) and bytes written per small edit on a 1 MB document
#     (tests/compat/bench/pg-writes.mjs); the benchmark creates and drops its own databases.
#
# The harness is copied to target/bench/harness (nothing is written to the shared folder) and
# taught one more peer, `collab` (our release binary, in-memory storage like the Node anchors;
# COLLAB_BENCH_DATABASE_URL=sqlite://… to measure with durable storage). Each run: a fresh
# server pinned to CPU 1, the loadgen pinned to CPU 0, after the machine is quiet.
# Results: target/bench/results.jsonl; tables are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=${BENCH_HARNESS:-$ROOT/../shared/bench}
[ -d "$SRC/loadgen" ] || { echo "bench: harness not found at $SRC (set BENCH_HARNESS)" >&2; exit 1; }
REPS=${1:-5}
shift || true
PEERS=("$@")
[ ${#PEERS[@]} -gt 0 ] || PEERS=(collab hocuspocus4 limit)
SCENARIOS=${SCENARIOS:-"throughput connect fanout fanout500"}
BENCH=$ROOT/target/bench
H=$BENCH/harness
OUT=$(realpath -m "${OUT:-$BENCH/results.jsonl}")
PG_OUT=${OUT%.jsonl}-postgres.jsonl
mkdir -p "$H"

# Copy the harness (sources and lockfiles only) and add the `collab` peer to the copy.
tar -C "$SRC" --exclude=./loadgen/target --exclude=./limit/target --exclude=node_modules \
  --exclude=./results/scratch -cf - . | tar -C "$H" -xf -
python3 - "$H" <<'PY'
import sys, pathlib
h = pathlib.Path(sys.argv[1])
peer = h / "peers/run-peer.sh"
s = peer.read_text()
if "collab)" not in s:
    s = s.replace('  limit|limit-fws)\n', '  collab)\n'
        '    exec "${COLLAB_SERVER_BIN:?}" --host 127.0.0.1 --port "$port" '
        '--database-url "${COLLAB_BENCH_DATABASE_URL:-memory://}" --log-level warn ;;\n'
        '  limit|limit-fws)\n', 1)
    peer.write_text(s)
run = h / "run-bench.sh"
s = run.read_text()
if "collab)" not in s:
    s = s.replace('  ywebsocket) proto=yws;', '  collab) proto=hocuspocus; url="ws://127.0.0.1:$PORT" ;;\n  ywebsocket) proto=yws;', 1)
    run.write_text(s)
PY

echo "bench: building the loadgen, limit and collab-server (release)"
cargo build --release --quiet --manifest-path "$H/loadgen/Cargo.toml"
cargo build --release --quiet --manifest-path "$H/limit/Cargo.toml"
cargo build --release --quiet -p collab-server
export COLLAB_SERVER_BIN=$ROOT/target/release/collab-server
for peer in "${PEERS[@]}"; do
  case "$peer" in
    hocuspocus2|hocuspocus4|ywebsocket) [ -d "$H/peers/$peer/node_modules" ] ||
      (cd "$H/peers/$peer" && npm ci --no-audit --no-fund --loglevel=error) ;;
  esac
done

bench_pg() {
  : "${COLLAB_BENCH_DATABASE_URL:?set COLLAB_BENCH_DATABASE_URL=postgres://… (the benchmark creates and drops databases there)}"
  [ -d "$ROOT/tests/compat/node_modules" ] ||
    (cd "$ROOT/tests/compat" && npm ci --no-audit --no-fund --loglevel=error)
  for _ in $(seq "$REPS"); do
    echo "bench: collab with PostgreSQL: acknowledgement latency under throughput"
    (cd "$ROOT/tests/compat" && LOADGEN_BIN="$H/loadgen/target/release/loadgen" node bench/pg-ack.mjs) | tee -a "$PG_OUT"
    echo "bench: collab with PostgreSQL: bytes written per small edit on a 1 MB document"
    (cd "$ROOT/tests/compat" && node bench/pg-writes.mjs 200) | tee -a "$PG_OUT"
  done
}

for scenario in $SCENARIOS; do
  if [ "$scenario" = pg ]; then
    bench_pg
    continue
  fi
  for peer in "${PEERS[@]}"; do
    echo "bench: $peer $scenario x$REPS"
    case "$scenario" in
      throughput) OUT=$OUT "$H/run-bench.sh" "$peer" throughput "$REPS" --docs 20 --writers 5 --window 4 --duration 15 ;;
      connect) OUT=$OUT "$H/run-bench.sh" "$peer" connect "$REPS" --clients 5000 --docs 500 ;;
      fanout) OUT=$OUT "$H/run-bench.sh" "$peer" fanout "$REPS" --subscribers 100 --rate 20 --duration 10 ;;
      fanout500) OUT=$OUT "$H/run-bench.sh" "$peer" fanout "$REPS" --subscribers 500 --rate 100 --duration 10 ;;
      *) echo "bench: unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
done

if [ -s "$OUT" ]; then
  python3 "$H/summarize.py" --max-other 10 "$OUT"
  python3 "$H/cpu_per_update.py" --max-other 10 "$OUT"
fi
