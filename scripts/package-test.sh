#!/usr/bin/env bash
# Builds the Debian package and checks it the way an operator uses it, on this machine:
# install with apt-get, the files dpkg lists, the config created from the example, nothing
# enabled, `cdp-sync --version`, `systemd-analyze verify` on the installed units, an upgrade
# (reinstall) keeping an edited config, remove keeping the config, purge leaving nothing
# (binaries, units, /etc/cdp-sync, /var/log/cdp-sync, deb-systemd-helper's state).
# A throwaway install: a cdp-sync package already installed is purged first.
# Prints PASS or FAIL last; exits non-zero on failure. Needs root (or sudo).
#   scripts/package-test.sh            SKIP_PACKAGE=1 skips it (prints why, exits 0)
set -euo pipefail

if [ "${SKIP_PACKAGE:-0}" = 1 ]; then
  echo "package-test: skipped (SKIP_PACKAGE=1)"
  exit 0
fi
src=$(cd "$(dirname "$0")/.." && pwd)
root=()
[ "$(id -u)" -eq 0 ] || root=(sudo)
export DEBIAN_FRONTEND=noninteractive

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
installed() { dpkg-query -W -f='${Status}' cdp-sync 2>/dev/null | grep -q "install ok installed"; }
known() { dpkg-query -W -f='${Status}' cdp-sync 2>/dev/null | grep -q .; }
finish() {
  local code=$?
  if [ "$code" -ne 0 ] && [ "$failures" -eq 0 ]; then echo "FAIL: package-test stopped (exit $code)"; fi
  if [ "$code" -eq 0 ] && [ "$failures" -eq 0 ]; then echo "package-test: PASS"; else echo "package-test: FAIL"; fi
}
trap finish EXIT

out=$(mktemp -d /tmp/cdp-sync-package.XXXXXX)
trap 'rm -rf "$out"; finish' EXIT
deb=$(bash "$src/scripts/package.sh" --out "$out" | tail -1)
[ -f "$deb" ] || { fail "no package built"; exit 1; }
ok "built $(basename "$deb")"

# cmake --install for another prefix (what scripts/install.sh runs) names that prefix.
DESTDIR="$out/stage" cmake --install "$src/build/package" --prefix /opt/cdp >/dev/null
if grep -q '^ExecStart=/opt/cdp/bin/cdp-sync ' "$out/stage/opt/cdp/lib/systemd/system/cdp-sync.service" 2>/dev/null; then
  ok "cmake --install --prefix /opt/cdp: the unit names /opt/cdp/bin/cdp-sync"
else
  fail "cmake --install --prefix /opt/cdp: the unit does not name /opt/cdp/bin/cdp-sync"
fi

if known; then
  echo "package-test: purging the cdp-sync package installed before (a throwaway install)"
  "${root[@]}" apt-get purge -y -q cdp-sync >/dev/null
fi

# What purge must leave absent; a path that exists already (say units scripts/install.sh put
# in /etc/systemd/system) is not the package's and is not checked.
gone_after_purge=()
for f in /usr/bin/cdp-sync /usr/bin/cdp-sync-sim /etc/cdp-sync /var/log/cdp-sync /lib/systemd/system/cdp-sync.service \
         /lib/systemd/system/cdp-sync-resync.service /etc/systemd/system/cdp-sync.service /usr/share/doc/cdp-sync; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "package-test: $f exists before the install: not checked"; else gone_after_purge+=("$f"); fi
done

"${root[@]}" apt-get install -y -q "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "apt-get install"; exit 1; }
ok "apt-get install $(basename "$deb")"

expected=(/usr/bin/cdp-sync /usr/bin/cdp-sync-sim /lib/systemd/system/cdp-sync.service
  /lib/systemd/system/cdp-sync-resync.service /usr/share/doc/cdp-sync/examples/cdp-sync.example.yaml
  /usr/share/doc/cdp-sync/copyright /usr/share/doc/cdp-sync/README.md /usr/share/man/man1/cdp-sync.1.gz)
listed=$(dpkg -L cdp-sync)
for f in "${expected[@]}"; do
  if grep -qx "$f" <<<"$listed" && [ -e "$f" ]; then ok "dpkg -L lists $f"; else fail "dpkg -L does not list $f (or it is missing)"; fi
done
if grep -q "^/usr/local" <<<"$listed"; then fail "the package installs under /usr/local"; fi

if cmp -s /etc/cdp-sync/config.yaml /usr/share/doc/cdp-sync/examples/cdp-sync.example.yaml; then
  ok "/etc/cdp-sync/config.yaml created from the example"
else
  fail "/etc/cdp-sync/config.yaml is not the example"
fi
if ls /etc/systemd/system/*.wants/cdp-sync*.service >/dev/null 2>&1; then fail "the package enabled a unit"; else ok "no unit enabled"; fi

if version=$(/usr/bin/cdp-sync --version 2>&1); then ok "cdp-sync --version: $version"; else fail "cdp-sync --version: $version"; fi
for u in cdp-sync.service cdp-sync-resync.service; do
  grep -q '^ExecStart=/usr/bin/cdp-sync ' "/lib/systemd/system/$u" || fail "$u: ExecStart= does not name /usr/bin/cdp-sync"
done
if verify=$(systemd-analyze verify /lib/systemd/system/cdp-sync.service /lib/systemd/system/cdp-sync-resync.service 2>&1) \
   && [ -z "$verify" ]; then
  ok "systemd-analyze verify: clean"
else
  fail "systemd-analyze verify: $verify"
fi

# An upgrade (the same package again runs the upgrade path: postinst configure OLD-VERSION)
# keeps the operator's edits.
echo "# edited by the operator" | "${root[@]}" tee -a /etc/cdp-sync/config.yaml >/dev/null
"${root[@]}" dpkg -i "$deb" >"$out/upgrade.log" 2>&1 || { cat "$out/upgrade.log"; fail "dpkg -i (upgrade)"; }
if tail -1 /etc/cdp-sync/config.yaml | grep -q "edited by the operator"; then ok "upgrade kept the edited config"; else fail "upgrade replaced the config"; fi

# What the service would have made, for purge to delete.
"${root[@]}" install -d /var/log/cdp-sync
echo "a log line" | "${root[@]}" tee /var/log/cdp-sync/cdp-sync.log >/dev/null
echo "token" | "${root[@]}" tee /etc/cdp-sync/token >/dev/null

"${root[@]}" apt-get remove -y -q cdp-sync >"$out/remove.log" 2>&1 || { cat "$out/remove.log"; fail "apt-get remove"; }
[ ! -e /usr/bin/cdp-sync ] && ok "remove deleted /usr/bin/cdp-sync" || fail "remove left /usr/bin/cdp-sync"
[ -f /etc/cdp-sync/config.yaml ] && ok "remove kept /etc/cdp-sync" || fail "remove deleted /etc/cdp-sync"

"${root[@]}" apt-get purge -y -q cdp-sync >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "apt-get purge"; }
left=()
for f in "${gone_after_purge[@]}"; do
  if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done
left+=($(ls -d /var/lib/systemd/deb-systemd-helper-enabled/*cdp-sync* /var/lib/systemd/deb-systemd-helper-masked/*cdp-sync* 2>/dev/null || true))
if [ ${#left[@]} -eq 0 ]; then ok "purge left nothing"; else fail "purge left ${left[*]}"; fi
if known; then fail "dpkg still knows cdp-sync after purge"; fi

[ "$failures" -eq 0 ]
