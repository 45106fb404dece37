#!/usr/bin/env bash
# Builds and installs cdp-sync:
#   PREFIX/bin/cdp-sync, PREFIX/bin/cdp-sync-sim              (cmake --install)
#   PREFIX/share/doc/cdp-sync/examples/cdp-sync.example.yaml  (cmake --install)
#   PREFIX/lib/systemd/system/*.service                       (cmake --install)
#   /etc/cdp-sync/config.yaml                                 (the example, only when absent)
#   /etc/systemd/system/cdp-sync.service, cdp-sync-resync.service
# then `systemctl daemon-reload` when systemd is running (not in a container whose PID 1 is
# something else). It never enables or starts the service.
#
#   scripts/install.sh [--prefix DIR] [--build-dir DIR] [--no-build] [--destdir DIR]
#     --prefix DIR     install prefix (default /usr/local)
#     --build-dir DIR  CMake build directory (default build-release in the source tree)
#     --no-build       install what the build directory holds
#     --destdir DIR    stage everything under DIR (packaging, tests); no daemon-reload
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
build=$src/build-release
destdir=
do_build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a DIR}; shift 2 ;;
    --build-dir) build=${2:?--build-dir needs a DIR}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a DIR}; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
prefix=${prefix%/}
destdir=${destdir%/}

if [ "$do_build" = 1 ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCDP_SYNC_TESTS=OFF -DCDP_SYNC_BENCH=OFF
  fi
  cmake --build "$build" --target cdp-sync cdp-sync-sim -j"$(nproc)"
fi
[ -x "$build/cdp-sync" ] || { echo "install.sh: $build/cdp-sync is not built" >&2; exit 1; }

# Binaries and the example config (the install rules of CMakeLists.txt).
DESTDIR=$destdir cmake --install "$build" --prefix "$prefix"

# The configuration: the example, unless one is there already.
etc=$destdir/etc/cdp-sync
install -d -m 0755 "$etc"
if [ -e "$etc/config.yaml" ]; then
  echo "kept the existing $etc/config.yaml"
else
  install -m 0644 "$src/config/cdp-sync.example.yaml" "$etc/config.yaml"
  echo "installed the example configuration as $etc/config.yaml: edit it"
fi

# The units, naming the binary where it was installed.
units=$destdir/etc/systemd/system
install -d -m 0755 "$units"
for u in "$src"/systemd/*.service; do
  sed -e "s#/usr/local/bin/cdp-sync#$prefix/bin/cdp-sync#g" \
      -e "s#/usr/local/share/doc/cdp-sync#$prefix/share/doc/cdp-sync#g" "$u" >"$units/$(basename "$u").tmp"
  chmod 0644 "$units/$(basename "$u").tmp"
  mv "$units/$(basename "$u").tmp" "$units/$(basename "$u")"
  echo "installed $units/$(basename "$u")"
done

if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "systemd reloaded"
else
  echo "systemd is not running here (PID 1: $(ps -o comm= -p 1 2>/dev/null || echo '?')): skipped systemctl daemon-reload"
fi

cat <<MSG

Next steps:
  1. Put the CDP token in /etc/cdp-sync/token (mode 0600, owner root); the service reads it
     through LoadCredential=, so remove cdp.token_env/token_file/token_command from the config.
  2. Edit /etc/cdp-sync/config.yaml (database.dsn, database.desired_memberships, ...).
  3. cdp-sync --config /etc/cdp-sync/config.yaml check
  4. systemctl enable --now cdp-sync       (one-off full resync: systemctl start cdp-sync-resync)
MSG
