#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for a while, from a temporary copy of the committed
# corpus (fuzz/corpus/<target>/ stays as committed; new inputs are discarded).
#
#   scripts/fuzz.sh [--if-available] [--replay] [SECONDS] [TARGET...]
#
# --replay runs every committed corpus input once instead (no mutation, deterministic).
# SECONDS per target (default 60); TARGETs default to all of `cargo fuzz list`. Prints per
# target libFuzzer's executed units and whether it crashed; exits non-zero on any crash (the
# input is kept in fuzz/artifacts/<target>/, which git ignores). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); with --if-available a missing cargo-fuzz is a skip (exit 0).
# On a stable toolchain the sanitizer flags need RUSTC_BOOTSTRAP=1, set for cargo fuzz only.
set -euo pipefail
cd "$(dirname "$0")/.."

if_available=false
replay=false
seconds=60
targets=()
for arg in "$@"; do
  case "$arg" in
    --if-available) if_available=true ;;
    --replay) replay=true ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *[!0-9]*) targets+=("$arg") ;;
    *) seconds=$arg ;;
  esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz" >&2
  if $if_available; then
    echo "scripts/fuzz.sh: skipping the fuzz run (--if-available)"
    exit 0
  fi
  exit 1
fi

fuzz=(cargo fuzz)
if ! rustc -vV | grep -q '^release: .*nightly'; then
  # Stable rustc refuses cargo-fuzz's -Z sanitizer flags unless bootstrapping is allowed.
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
# The sanitizer build of every dependency takes long on two cores: it lives outside the
# checkout (FUZZ_TARGET_DIR), so fresh clones of the repository reuse it.
target_dir=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/collab-fuzz/target}
mkdir -p "$target_dir"

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${fuzz[@]}" list)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/collab-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "==> building fuzz targets: ${targets[*]}"
for target in "${targets[@]}"; do
  "${fuzz[@]}" build --target-dir "$target_dir" "$target"
done

failed=0
summary=()
for target in "${targets[@]}"; do
  corpus="$work/corpus-$target"
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$target" ]; then
    cp -R "fuzz/corpus/$target/." "$corpus/"
  fi
  log="$work/$target.log"
  echo "==> fuzzing $target for ${seconds}s ($(find "$corpus" -type f | wc -l) seed inputs)"
  extra=()
  case "$target" in
    # yrs leaks every decoded subdocument (a reference cycle; LeakSanitizer stops the run on the
    # first one, which the committed corpus holds). Leaks are not checked here until that is
    # fixed; set FUZZ_DETECT_LEAKS=1 to check them anyway.
    update) [ "${FUZZ_DETECT_LEAKS:-0}" = 1 ] || extra+=(-detect_leaks=0) ;;
  esac
  status=0
  if $replay; then
    # Every corpus input once, no mutation: a deterministic regression check.
    extra+=(-runs=0)
  else
    extra+=(-max_total_time="$seconds")
  fi
  "${fuzz[@]}" run --target-dir "$target_dir" "$target" "$corpus" -- \
    -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    ${extra[@]+"${extra[@]}"} >"$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  executions=${executions:-unknown}
  if [ "$status" -eq 0 ]; then
    result="ok"
  else
    result="CRASHED (exit $status)"
    failed=1
    echo "---- $target: what failed"
    grep -m 1 -A 4 -E "panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" "$log" || true
    grep -E "^ +[0-9]+: |^ +at |^ +#[0-9]+ " "$log" | grep -E "collab|fuzz_targets|yrs|serde|bounded" | head -n 24 || true
    echo "---- $target: last lines of libFuzzer's output"
    tail -n 30 "$log"
    artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
    if [ -n "$artifact" ] && [ -f "$artifact" ]; then
      echo "---- $target: crashing input $artifact (hex):"
      od -An -v -tx1 "$artifact" | tr -d ' \n' | head -c 4096
      echo
    fi
  fi
  line="$target: $executions executions, $result"
  echo "$line"
  summary+=("$line")
done

echo
if $replay; then echo "==> fuzz summary (corpus replay)"; else echo "==> fuzz summary (${seconds}s per target)"; fi
printf '  %s\n' "${summary[@]}"
exit "$failed"
