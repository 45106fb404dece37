# Sourced by bench/run.sh and bench/scale.sh: build the binaries, and a PostgreSQL to measure
# against (CDP_SYNC_TEST_DSN if set, else a throwaway cluster stopped on exit).
# Environment: BUILD_DIR (default build/release), CDP_SYNC_BENCH_PGPORT (default 55441).

bench_build() {  # targets...
  build=${BUILD_DIR:-build/release}
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
  if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$build" --target "$@" -j "$(nproc)" >&2
}

bench_pgdir=""
bench_cleanup() {
  if [ -n "$bench_pgdir" ]; then bash "$root/scripts/pg-cluster.sh" stop "$bench_pgdir" || true; rm -rf "$bench_pgdir"; fi
}

bench_postgres() {
  trap bench_cleanup EXIT
  if [ -z "${CDP_SYNC_TEST_DSN:-}" ]; then
    bench_pgdir=$(mktemp -d /tmp/cdp-sync-bench-pg.XXXXXX)
    CDP_SYNC_TEST_DSN=$(bash scripts/pg-cluster.sh start "$bench_pgdir" "${CDP_SYNC_BENCH_PGPORT:-55441}")
    chmod 755 "$bench_pgdir"
  fi
  export CDP_SYNC_TEST_DSN
}

# What is measured: the commit and any uncommitted source changes built into the binary.
bench_commit_line() {
  local commit dirty
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git diff --name-only HEAD -- src CMakeLists.txt 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
  echo "$commit${dirty:+ plus uncommitted changes to $dirty}"
}

bench_machine_line() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "$(nproc) cores, $cpu, $(free -g | awk '/^Mem:/ {print $2}') GB RAM"
}
