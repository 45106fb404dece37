#!/usr/bin/env bash
# Reverses scripts/install.sh: stops and disables the units (when systemd runs), removes
# them, the binaries and the installed docs. Keeps /etc/cdp-sync (config, token) unless
# --purge. The cdp_sync schema in PostgreSQL is never touched.
#
#   scripts/uninstall.sh [--prefix DIR] [--destdir DIR] [--purge]
set -euo pipefail

prefix=/usr/local
destdir=
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a DIR}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a DIR}; shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
prefix=${prefix%/}
destdir=${destdir%/}

systemd_running=0
if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then systemd_running=1; fi

for u in cdp-sync.service cdp-sync-resync.service; do
  if [ "$systemd_running" = 1 ]; then
    systemctl disable --now "$u" 2>/dev/null || true
  fi
  # install.sh puts units in /etc/systemd/system; cmake --install under PREFIX/lib.
  for f in "$destdir/etc/systemd/system/$u" "$destdir$prefix/lib/systemd/system/$u"; do
    if [ -e "$f" ]; then rm -f "$f"; echo "removed $f"; fi
  done
done
if [ "$systemd_running" = 1 ]; then systemctl daemon-reload; fi

for f in "$destdir$prefix/bin/cdp-sync" "$destdir$prefix/bin/cdp-sync-sim"; do
  if [ -e "$f" ]; then rm -f "$f"; echo "removed $f"; fi
done
if [ -d "$destdir$prefix/share/doc/cdp-sync" ]; then
  rm -rf "$destdir$prefix/share/doc/cdp-sync"
  echo "removed $destdir$prefix/share/doc/cdp-sync"
fi

if [ "$purge" = 1 ]; then
  rm -rf "$destdir/etc/cdp-sync"
  echo "removed $destdir/etc/cdp-sync (--purge)"
elif [ -d "$destdir/etc/cdp-sync" ]; then
  echo "kept $destdir/etc/cdp-sync (config and token); --purge removes it"
fi
echo "the logs in /var/log/cdp-sync and the cdp_sync schema in PostgreSQL are left as they are"
