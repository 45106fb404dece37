#!/usr/bin/env bash
# Checks the systemd units in systemd/: prints `systemd-analyze verify` and the summary of
# `systemd-analyze security --offline=yes` for each, and fails when verify reports anything
# or an exposure level is above 2.0.
#   scripts/check-units.sh [CDP_SYNC_BINARY]
# The units name /usr/local/bin/cdp-sync; verify needs that file to exist, so when it is not
# installed the check runs on copies naming CDP_SYNC_BINARY (default: a built one).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
max_exposure=2.0
bin=${1:-}
if [ -z "$bin" ]; then
  if [ -x /usr/local/bin/cdp-sync ]; then
    bin=/usr/local/bin/cdp-sync
  else
    bin=$(ls -t "$src"/build*/cdp-sync 2>/dev/null | head -1 || true)
  fi
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "check-units: no cdp-sync binary (install it or pass its path)" >&2
  exit 2
fi
bin=$(realpath "$bin")
command -v systemd-analyze >/dev/null || { echo "check-units: systemd-analyze not found" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
units=()
for u in "$src"/systemd/*.service; do
  name=$(basename "$u")
  sed "s#/usr/local/bin/cdp-sync#$bin#g" "$u" >"$tmp/$name"
  units+=("$tmp/$name")
done

status=0
echo "## systemd-analyze verify ($(systemd-analyze --version | head -1))"
if out=$(systemd-analyze verify "${units[@]}" 2>&1) && [ -z "$out" ]; then
  echo "clean: ${units[*]##*/}"
else
  echo "$out"
  echo "FAIL: verify reported problems"
  status=1
fi

echo
echo "## systemd-analyze security --offline=yes"
for u in "${units[@]}"; do
  line=$(systemd-analyze security --offline=yes "$u" 2>&1 | grep -a "Overall exposure level" || true)
  echo "${line:-$(basename "$u"): no exposure level reported}"
  level=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
  if [ -z "$level" ] || awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l > m) }'; then
    echo "FAIL: $(basename "$u") exposure ${level:-unknown} is above $max_exposure"
    status=1
  fi
done
exit $status
