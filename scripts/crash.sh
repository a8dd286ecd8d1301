#!/usr/bin/env bash
# Crash rounds (tests/compat/crash.mjs): clients edit several documents with a small
# COLLAB_SERVER_COMPACT_AFTER while rooms unload and reload, the server is killed with SIGKILL at
# a random moment and restarted, and every acknowledged edit is looked for. On SQLite; on
# PostgreSQL with COLLAB_TEST_DATABASE_URL; with two replicas when COLLAB_TEST_REDIS_URL is set
# too (one is killed, the other serves). Prints acknowledged edits lost per rounds run.
#
#   scripts/crash.sh [ROUNDS] [sqlite|postgres|replicas ...]
#
# Needs the debug binary (cargo build) or COLLAB_SERVER_BIN, and `npm ci` in tests/compat.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
rounds=${1:-3}
shift || true
[ -d tests/compat/node_modules ] || (cd tests/compat && npm ci --no-audit --no-fund --loglevel=error)
export COLLAB_SERVER_BIN=${COLLAB_SERVER_BIN:-$ROOT/target/debug/collab-server}
[ -x "$COLLAB_SERVER_BIN" ] || { echo "scripts/crash.sh: no server binary at $COLLAB_SERVER_BIN (cargo build first)" >&2; exit 1; }
cd tests/compat
exec node crash.mjs "$rounds" "$@"
