#!/usr/bin/env bash
# Checks the Prometheus alerting rules (ops/prometheus/giftd-rules.yml; run by scripts/test.sh):
# promtool validates them and runs their unit tests (giftd-rules.test.yml). That every giftd_*
# metric they name is exposed by a running daemon is checked by the integration test
# `daemon::alert_rules_name_only_metrics_the_daemon_exposes`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../ops/prometheus"

command -v promtool >/dev/null || {
  echo "check-rules: promtool not found: install Debian's prometheus package (apt-get install --no-install-recommends prometheus; .ci/run does it)" >&2
  exit 1
}
promtool check rules giftd-rules.yml
promtool test rules giftd-rules.test.yml
