#!/usr/bin/env bash
# The test command (README "Test", and what .ci/run calls): formatting, lints, then every test of
# the workspace inside the real test environment (PostgreSQL 15 + postrust, scripts/test-env.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "scripts/check-rules.sh (alerting rules: promtool check and unit tests)"
scripts/check-rules.sh

step "scripts/check-unit.sh (systemd/giftd.service: exposure, verify, giftd within its sandbox)"
scripts/check-unit.sh

# `failpoints` compiles in the crash points the withdrawal tests kill giftd at.
step "scripts/test-env.sh -- cargo nextest run --workspace --features giftd/failpoints"
scripts/test-env.sh -- cargo nextest run --workspace --features giftd/failpoints
