#!/usr/bin/env bash
# The fault-injection checker's long mode (server/tests/checker.rs): SEEDS seeds of OPERATIONS
# operations each, three replicas on one PostgreSQL and one Redis with held relay traffic,
# deletions, restarts and frequent compaction. Prints violations per seed and a total; exits
# non-zero if any seed fails (replay one with COLLAB_CHECKER_SEED=<seed>).
#
#   scripts/checker.sh [SEEDS] [OPERATIONS]
#
# Needs COLLAB_TEST_DATABASE_URL and COLLAB_TEST_REDIS_URL (a database and a Redis it may write
# to; scripts/test.sh starts throwaway ones for the bounded run).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${COLLAB_TEST_DATABASE_URL:?set COLLAB_TEST_DATABASE_URL=postgres://… (a database the checker may write to)}"
: "${COLLAB_TEST_REDIS_URL:?set COLLAB_TEST_REDIS_URL=redis://… (a Redis the checker may use)}"
export COLLAB_CHECKER_SEEDS=${1:-100}
export COLLAB_CHECKER_OPERATIONS=${2:-200}
cargo test -p collab-server --test checker -- --nocapture 2>&1 | grep -E '^checker:|^  seed|test result'
