#!/usr/bin/env bash
# The editor the server embeds (server/static/editor, built from editor/ by Vite) must be what
# editor/ builds: rebuild it into a temp directory and compare. Fix a failure with
#   (cd editor && npm ci && npm run build)
# and commit server/static/editor.
set -euo pipefail
cd "$(dirname "$0")/../editor"
OUT=$(mktemp -d "${TMPDIR:-/tmp}/collab-editor.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
npm ci --no-audit --no-fund --loglevel=error
npx vite build --outDir "$OUT" --emptyOutDir --logLevel warn
if ! diff -r "$OUT" ../server/static/editor >/dev/null; then
  diff -r "$OUT" ../server/static/editor | head -n 20 >&2 || true
  echo "scripts/check-editor.sh: server/static/editor is stale: run (cd editor && npm ci && npm run build) and commit it" >&2
  exit 1
fi
echo "server/static/editor matches editor/"
