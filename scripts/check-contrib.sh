#!/usr/bin/env bash
# Checks the monitoring files in contrib/: the Prometheus alert rules (promtool check rules,
# and promtool test rules with contrib/prometheus/alerts_test.yml), the Grafana dashboard
# (valid JSON), and that both name only cdp-sync's metrics (the list below, fixed by the
# metrics endpoint) and the dashboard plots every one of them.
#
# promtool: from PATH, else taken out of Debian's prometheus package into build/tools/
# (apt-get download; nothing is installed: the package would bring a Prometheus server).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
rules=$src/contrib/prometheus/alerts.yml
rules_test=$src/contrib/prometheus/alerts_test.yml
dashboard=$src/contrib/grafana/cdp-sync-dashboard.json
metrics=(cdp_sync_runs_total cdp_sync_run_duration_seconds cdp_sync_ops cdp_sync_calls_total
  cdp_sync_retries_total cdp_sync_http_429_total cdp_sync_rate_limit_qps
  cdp_sync_last_success_timestamp_seconds cdp_sync_drift_corrections_total cdp_sync_memberships
  cdp_sync_leader cdp_sync_build_info)

promtool() {
  if command -v promtool >/dev/null; then command promtool "$@"; return; fi
  local tools=$src/build/tools
  if [ ! -x "$tools/usr/bin/promtool" ]; then
    mkdir -p "$tools"
    (cd "$tools" && { apt-get download prometheus >/dev/null 2>&1 ||
       { apt-get update -q >/dev/null && apt-get download prometheus >/dev/null 2>&1; }; } &&
     dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && rm -f prometheus_*.deb) ||
      { echo "check-contrib: FAIL: could not get promtool (apt-get download prometheus)" >&2; exit 1; }
  fi
  "$tools/usr/bin/promtool" "$@"
}

status=0
echo "## promtool ($(promtool --version 2>&1 | head -1))"
(cd "$(dirname "$rules")" && promtool check rules "$(basename "$rules")" && promtool test rules "$(basename "$rules_test")") || status=1

echo "## dashboard JSON"
if python3 -m json.tool "$dashboard" >/dev/null; then echo "valid: ${dashboard#"$src"/}"; else status=1; fi

echo "## metric names"
for f in "$rules" "$dashboard"; do
  for name in $(grep -o 'cdp_sync_[a-z0-9_]*' "$f" | sort -u); do
    if ! printf '%s\n' "${metrics[@]}" | grep -qx "$name"; then
      echo "FAIL: ${f#"$src"/} names $name, which cdp-sync does not export"; status=1
    fi
  done
done
for name in "${metrics[@]}"; do
  grep -q "$name[^a-z_]" "$dashboard" || { echo "FAIL: the dashboard does not plot $name"; status=1; }
done
[ "$status" = 0 ] && echo "check-contrib: PASS" || echo "check-contrib: FAIL"
exit $status
