#!/usr/bin/env bash
# Builds the Debian package cdp-sync_<version>_amd64.deb with CPack (rules in CMakeLists.txt,
# maintainer scripts in contrib/debian/) and runs lintian on it when lintian is installed.
#
#   scripts/package.sh [--build-dir DIR] [--out DIR] [--no-lintian]
#     --build-dir DIR  CMake build directory (default build/package: no tests, no benchmarks)
#     --out DIR        where the .deb goes (default: the source tree's top)
#     --no-lintian     skip lintian
# Prints the path of the package on its last line.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build/package
out=$src
lintian=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=${2:?--build-dir needs a DIR}; shift 2 ;;
    --out) out=${2:?--out needs a DIR}; shift 2 ;;
    --no-lintian) lintian=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v dpkg-shlibdeps >/dev/null || { echo "package.sh: dpkg-shlibdeps missing (apt-get install dpkg-dev)" >&2; exit 2; }

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$src} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCDP_SYNC_TESTS=OFF -DCDP_SYNC_BENCH=OFF -DCDP_SYNC_SANITIZE=OFF >/dev/null
cmake --build "$build" --target cdp-sync cdp-sync-sim -j"$(nproc)"

# CPack writes root as every file's owner itself: no fakeroot needed.
(cd "$build" && rm -f ./*.deb && cpack -G DEB)
deb=$(ls "$build"/cdp-sync_*_*.deb)
mkdir -p "$out"
cp -f "$deb" "$out/"
deb=$out/$(basename "$deb")

if [ "$lintian" = 1 ]; then
  if command -v lintian >/dev/null; then
    # Clean today; a warning or an error fails the build.
    lintian --info --fail-on warning "$deb"
  else
    echo "package.sh: lintian not installed: not checked"
  fi
fi
echo "$deb"
