#!/usr/bin/env bash
# The test command (README "Test", and what .ci/run calls): formatting, lints, the alert rules,
# the systemd unit, then every test of the workspace inside the real test environment
# (PostgreSQL 15 + postrust, scripts/test-env.sh). Every step runs even when an earlier one
# failed, every test runs even when another failed, and the failures are listed at the end.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FAILED=()
step() {
  local name="$1"
  shift
  printf '\n==> %s\n' "$name" >&2
  local start=$SECONDS
  if "$@"; then
    printf '==> ok: %s (%ss)\n' "$name" "$((SECONDS - start))" >&2
  else
    printf '==> FAILED: %s (%ss)\n' "$name" "$((SECONDS - start))" >&2
    FAILED+=("$name")
  fi
}

JUNIT=target/nextest/default/junit.xml
rm -f "$JUNIT"

step "cargo fmt --check" cargo fmt --check
step "cargo clippy --workspace --all-targets -- -D warnings" \
  cargo clippy --workspace --all-targets -- -D warnings
step "scripts/check-rules.sh (alerting rules: promtool check and unit tests)" scripts/check-rules.sh
step "scripts/check-unit.sh (systemd/giftd.service: exposure, verify, giftd within its sandbox)" \
  scripts/check-unit.sh
# `failpoints` compiles in the crash points the withdrawal tests kill giftd at.
step "cargo nextest run --workspace --features giftd/failpoints --no-fail-fast (in scripts/test-env.sh)" \
  scripts/test-env.sh -- cargo nextest run --workspace --features giftd/failpoints --no-fail-fast

if [[ ${#FAILED[@]} -eq 0 ]]; then
  printf '\n==> all steps passed\n' >&2
  exit 0
fi
printf '\n==> %d step(s) failed:\n' "${#FAILED[@]}" >&2
printf '    %s\n' "${FAILED[@]}" >&2
if [[ -f "$JUNIT" ]]; then
  printf '==> failed tests (their output is above, repeated at the end of the test run):\n' >&2
  scripts/junit-failures.py "$JUNIT" | sed 's/^/    /' >&2
fi
exit 1
