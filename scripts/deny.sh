#!/usr/bin/env bash
# Dependency policy (deny.toml) with cargo-deny, on the graph Cargo.lock pins:
#
#   scripts/deny.sh
#
# licenses, bans and sources need only crates.io (cargo metadata) and always run. advisories
# needs the RustSec advisory database, a git repository on GitHub: when it can be fetched, or an
# earlier fetch is on disk, advisories run too; when neither, the script says loudly that
# advisories were NOT checked and carries on (set DENY_REQUIRE_ADVISORIES=1 to fail instead).
# Without cargo-deny (`cargo install cargo-deny --locked`) it prints a skip message and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  echo "scripts/deny.sh: cargo-deny is not installed (cargo install cargo-deny --locked); skipping the dependency checks"
  exit 0
fi

deny=(cargo deny --locked)
status=0

# Which advisory database a check used, and how old it is (deny.toml sets no db-path).
db_age() {
  local db
  for db in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*; do
    [ -d "$db" ] || continue
    echo "  advisory database $db: last commit $(git -C "$db" log -1 --format=%cs 2>/dev/null || echo unknown)"
  done
}

echo "==> cargo deny check licenses bans sources"
"${deny[@]}" check licenses bans sources || status=1

echo "==> cargo deny check advisories"
log=$(mktemp "${TMPDIR:-/tmp}/collab-deny.XXXXXX")
trap 'rm -f "$log"' EXIT
if "${deny[@]}" fetch db >"$log" 2>&1; then
  "${deny[@]}" check advisories || status=1
  db_age
elif "${deny[@]}" --offline check advisories >>"$log" 2>&1; then
  # No fetch, but a database from an earlier fetch is on disk: its findings are as old as it is.
  echo "scripts/deny.sh: WARNING: could not fetch the advisory database; checked against the copy already on disk, which may be stale"
  echo "advisories ok"
  db_age
elif grep -q 'advisory-db' "$log" && ! grep -qE '^error\[(vulnerability|unmaintained|unsound|notice|yanked)' "$log"; then
  echo "scripts/deny.sh: WARNING: advisories NOT checked: the RustSec advisory database could not be fetched and none is on disk"
  grep -m 3 -E 'ERROR|fatal' "$log" | sed 's/^/  /' || true
  if [ "${DENY_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    status=1
  fi
else
  # Checked against an on-disk database, and it found something.
  cat "$log"
  echo "scripts/deny.sh: (the advisory database could not be fetched; the copy on disk may be stale)"
  status=1
fi

exit "$status"
