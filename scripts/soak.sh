#!/usr/bin/env bash
# A bounded soak (not part of the test command): 2,000 providers edit 200 documents for five
# minutes against the release binary; the server's RSS is sampled, and read again after every
# client has left. Prints baseline, peak and after-leaving RSS.
#
#   scripts/soak.sh [CLIENTS] [SECONDS] [DOCS]      defaults: 2000 300 200
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cargo build --release --locked -p collab-server --bin collab-server
[ -d tests/compat/node_modules ] || (cd tests/compat && npm ci --no-audit --no-fund --loglevel=error)
cd tests/compat
COLLAB_SERVER_BIN="$ROOT/target/release/collab-server" exec node soak.mjs "$@"
