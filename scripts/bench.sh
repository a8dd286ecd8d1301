#!/usr/bin/env bash
# Benchmarks collab-server side by side with Hocuspocus 4 and `limit` (the machine's floor),
# in one session, with the harness in bench/ (see its README).
#
#   scripts/bench.sh [reps] [peers...]        defaults: 5 reps; peers collab hocuspocus4 limit
#   SCENARIOS="throughput connect fanout fanout500" scripts/bench.sh 5
#   SCENARIOS=pg COLLAB_BENCH_DATABASE_URL=postgres://… scripts/bench.sh 3 collab
#     PostgreSQL storage: update-to-acknowledgement p50/p99 under the throughput scenario
#     (tests/compat/bench/pg-ack.mjs) and bytes written per small edit on a 1 MB document
#     (tests/compat/bench/pg-writes.mjs); the benchmark creates and drops its own databases.
#
# The harness is copied to target/bench/harness (nothing is written to bench/) and
# taught more peers:
#   collab            our release binary, in-memory storage like the Node anchors
#                     (COLLAB_BENCH_DATABASE_URL=sqlite://… or postgres://… to change it)
#   collab-sqlite     our release binary on its default: SQLite in a fresh data directory
#   collab-postgres   our release binary on COLLAB_BENCH_POSTGRES_URL
#   hocuspocus4-file  Hocuspocus 4 with one file per document (@hocuspocus/extension-database)
#   hocuspocus-rs     HOCUSPOCUS_RS_BIN: the examples/bench_server binary of
#                     github.com/wing-anara/hocuspocus-rs, built in its own checkout (never here)
# Each run: a fresh server pinned to CPU 1, the loadgen pinned to CPU 0, after the machine is
# quiet.
# Results: target/bench/results.jsonl; tables are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=${BENCH_HARNESS:-$ROOT/bench}
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
        # The default users run: SQLite in the data directory, every edit durable.
        '  collab-sqlite)\n'
        '    data="$(mktemp -d -p "${COLLAB_BENCH_DATA:?}" collab-sqlite.XXXXXX)"\n'
        '    exec "${COLLAB_SERVER_BIN:?}" --host 127.0.0.1 --port "$port" --data-dir "$data" --log-level warn ;;\n'
        # PostgreSQL (COLLAB_BENCH_POSTGRES_URL; the documents stay there, under random names).
        '  collab-postgres)\n'
        '    exec "${COLLAB_SERVER_BIN:?}" --host 127.0.0.1 --port "$port" '
        '--database-url "${COLLAB_BENCH_POSTGRES_URL:?set COLLAB_BENCH_POSTGRES_URL=postgres://…}" --log-level warn ;;\n'
        # Hocuspocus 4 with one file per document (@hocuspocus/extension-database).
        '  hocuspocus4-file)\n'
        '    export PERSIST_DIR="$(mktemp -d -p "${COLLAB_BENCH_DATA:?}" hocuspocus4-store.XXXXXX)"\n'
        '    cd "$here/hocuspocus4"\n'
        '    PORT="$port" HOST=127.0.0.1 exec node server.mjs ;;\n'
        # A binary built elsewhere (its examples/bench_server binds 127.0.0.1:1234 itself).
        '  hocuspocus-rs)\n'
        '    exec "${HOCUSPOCUS_RS_BIN:?set HOCUSPOCUS_RS_BIN to a hocuspocus-rs bench_server binary}" ;;\n'
        '  limit|limit-fws)\n', 1)
    peer.write_text(s)
run = h / "run-bench.sh"
s = run.read_text()
if "collab)" not in s:
    s = s.replace('  ywebsocket) proto=yws;',
        '  collab|collab-sqlite|collab-postgres|hocuspocus4-file|hocuspocus-rs) proto=hocuspocus; url="ws://127.0.0.1:$PORT" ;;\n'
        '  ywebsocket) proto=yws;', 1)
    run.write_text(s)
PY

echo "bench: building the loadgen, limit and collab-server (release)"
cargo build --release --quiet --manifest-path "$H/loadgen/Cargo.toml"
cargo build --release --quiet --manifest-path "$H/limit/Cargo.toml"
cargo build --release --quiet -p collab-server
export COLLAB_SERVER_BIN=$ROOT/target/release/collab-server
# The durable peers' stores: one fresh directory per run, all removed at the end.
export COLLAB_BENCH_DATA=$BENCH/data
mkdir -p "$COLLAB_BENCH_DATA"
trap 'rm -rf "$COLLAB_BENCH_DATA"' EXIT
for peer in "${PEERS[@]}"; do
  case "$peer" in
    hocuspocus2|hocuspocus4|hocuspocus4-file|ywebsocket)
      dir=$H/peers/${peer%-file}   # hocuspocus4-file runs hocuspocus4's project
      [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ;;
    hocuspocus-rs) [ -x "${HOCUSPOCUS_RS_BIN:-}" ] ||
      { echo "bench: set HOCUSPOCUS_RS_BIN to hocuspocus-rs's bench_server (built outside this tree)" >&2; exit 1; } ;;
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
    # hocuspocus-rs's bench_server has a fixed port; the durable peers' I/O threads (fsyncs)
    # run on the other core, which the harness would take for a disturbance.
    export PORT=18500 OTHER_MAX=10
    case "$peer" in
      hocuspocus-rs) PORT=1234 ;;
      collab-sqlite|hocuspocus4-file) OTHER_MAX=35 ;;
      # PostgreSQL's own processes run beside the loadgen.
      collab-postgres) OTHER_MAX=100 ;;
    esac
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
  # Each run was already held to its peer's OTHER_MAX above (and repeated when disturbed).
  python3 "$H/summarize.py" --max-other 100 "$OUT"
  python3 "$H/cpu_per_update.py" --max-other 100 "$OUT"
fi
