#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, starts a throwaway
# PostgreSQL cluster, and runs the whole suite twice: a normal build, then an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
#   scripts/test.sh            both builds
#   SKIP_SANITIZE=1 scripts/test.sh   the normal build only (quick local runs)
#   SKIP_FUZZ=1 scripts/test.sh       without the short fuzz run at the end
#   SKIP_PACKAGE=1 scripts/test.sh    without the Debian package test (it installs and
#                                     purges the package on this machine: needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh

jobs=$(nproc)
# Let ccache hit across clones in different folders (CI builds a fresh clone each time).
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
pgdir=$(mktemp -d /tmp/cdp-sync-test-pg.XXXXXX)
pgport=${CDP_SYNC_TEST_PGPORT:-55439}
cleanup() { bash "$root/scripts/pg-cluster.sh" stop "$pgdir" || true; rm -rf "$pgdir"; }
trap cleanup EXIT

export CDP_SYNC_TEST_DSN
CDP_SYNC_TEST_DSN=$(bash scripts/pg-cluster.sh start "$pgdir" "$pgport")
echo "test PostgreSQL: $CDP_SYNC_TEST_DSN"

run_suite() {
  local dir=$1; shift
  echo "== configure $dir ($*)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  echo "== build $dir"
  cmake --build "$dir" -j "$jobs"
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j "$jobs")
}

# The monitoring files (alert rules, dashboard). It also puts promtool (taken out of Debian's
# prometheus package, not installed) in build/tools, where the metrics tests find it.
export PATH="$root/build/tools/usr/bin:$PATH"
echo "== contrib"
bash scripts/check-contrib.sh
run_suite build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The Debian package: built, installed, upgraded, purged.
echo "== package"
bash scripts/package-test.sh
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  run_suite build/sanitize -DCMAKE_BUILD_TYPE=Debug -DCDP_SYNC_SANITIZE=ON -DCDP_SYNC_BENCH=OFF
fi
# libFuzzer targets for reply parsing and config loading, a short bounded run
# (FUZZ_SECONDS=600 bash scripts/fuzz.sh for a longer one).
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz"
  bash scripts/fuzz.sh
fi
echo "== all tests passed"
