#!/usr/bin/env bash
# Runs the whole test suite N times in a row while busy loops keep every core loaded, then prints
# each test that failed at least once with how many times. A test that passes only on an idle
# machine is a failing test; this is how to find one before CI does. No test is retried.
#
#   scripts/flake-hunt.sh N        (default 3)
#
# Each run starts its own test environment (scripts/test-env.sh), so a failure to start one
# counts too ("environment"). Reports of every run are kept in target/flake-hunt/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N="${1:-3}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/flake-hunt.sh [N>=1]" >&2; exit 2; }
OUT=target/flake-hunt
rm -rf "$OUT" && mkdir -p "$OUT"
JUNIT=target/nextest/default/junit.xml
FEATURES=(--workspace --features giftd/failpoints)

echo "flake-hunt: building the tests once (not under load)" >&2
cargo nextest run "${FEATURES[@]}" --no-run || { echo "flake-hunt: the build failed" >&2; exit 1; }

BURNERS=()
stop_burners() { [[ ${#BURNERS[@]} -gt 0 ]] && kill "${BURNERS[@]}" 2>/dev/null; BURNERS=(); }
trap stop_burners EXIT
trap 'exit 130' INT TERM
CORES=$(nproc)
for _ in $(seq 1 "$CORES"); do
  ( trap - INT TERM; while :; do :; done ) &
  BURNERS+=($!)
done
echo "flake-hunt: $CORES busy loops keep every core loaded; $N run(s) of the suite" >&2

declare -A COUNT=()
GREEN=0
for run in $(seq 1 "$N"); do
  start=$SECONDS
  rm -f "$JUNIT"
  scripts/test-env.sh -- cargo nextest run "${FEATURES[@]}" --no-fail-fast \
    >"$OUT/run-$run.log" 2>&1
  status=$?
  took=$((SECONDS - start))
  if [[ -f "$JUNIT" ]]; then
    cp "$JUNIT" "$OUT/run-$run.junit.xml"
    failed="$(scripts/junit-failures.py "$JUNIT")"
  elif [[ $status -ne 0 ]]; then
    failed="environment (no test ran: see $OUT/run-$run.log)"
  else
    failed=""
  fi
  if [[ -z "$failed" && $status -eq 0 ]]; then
    GREEN=$((GREEN + 1))
    echo "flake-hunt: run $run/$N green (${took}s)" >&2
  else
    [[ -z "$failed" ]] && failed="run exited $status with no failed test recorded (see $OUT/run-$run.log)"
    echo "flake-hunt: run $run/$N FAILED (${took}s):" >&2
    while IFS= read -r name; do
      [[ -n "$name" ]] || continue
      echo "    $name" >&2
      COUNT["$name"]=$(( ${COUNT["$name"]:-0} + 1 ))
    done <<<"$failed"
  fi
done
stop_burners

echo
echo "flake-hunt: $GREEN/$N runs green under load"
if [[ ${#COUNT[@]} -gt 0 ]]; then
  echo "tests that failed at least once (failures/runs):"
  for name in "${!COUNT[@]}"; do
    printf '  %d/%d  %s\n' "${COUNT[$name]}" "$N" "$name"
  done | sort -rn
  exit 1
fi
