#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan) into build/fuzz and runs each
# for FUZZ_SECONDS seconds; exits non-zero if any target crashed, leaked, timed out or broke
# an invariant. One summary line per target: executions, seconds, corpus size.
#
#   scripts/fuzz.sh                          every target, 30 s each (the CI run)
#   FUZZ_SECONDS=600 scripts/fuzz.sh         the longer run: 10 minutes each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh fuzz_config   one target, an hour
#   FUZZ_SRC=/tmp/copy/src scripts/fuzz.sh   fuzz another src/ tree (e.g. with a fix
#                                            applied) in build/fuzz-src
#
# Targets: fuzz_cdp_reply (CDP reply bodies: src/cdp/models.hpp decoders as api.cpp uses
# them) and fuzz_config (config::load_string). Seeds are fuzz/corpus/<target>/ and
# fuzz/dict/<target>.dict; what the fuzzer learns goes to build/fuzz/corpus/<target>/ (kept
# between runs, never the source tree). A crash leaves its input in build/fuzz/artifacts/ and
# the log in build/fuzz/logs/<target>.log; reproduce with
#   build/fuzz/<target> build/fuzz/artifacts/<file>
# then turn it into a test in tests/models/fuzz_regressions_test.cpp or
# tests/config/fuzz_regressions_test.cpp.
#
# Needs clang and its libFuzzer runtime (Debian: libclang-rt-<version>-dev, which the clang
# package only recommends); as root it is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${FUZZ_SECONDS:-30}
build=$root/build/fuzz
src=$root/src
if [ -n "${FUZZ_SRC:-}" ]; then
  build=$root/build/fuzz-src
  src=$(cd "$FUZZ_SRC" && pwd)
fi
all_targets=(fuzz_cdp_reply fuzz_config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/setup.sh installs clang)" >&2; exit 1; }
runtime="$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
if [ ! -f "$runtime" ]; then
  major=$(clang++ -dumpversion | cut -d. -f1)
  pkg="libclang-rt-$major-dev"
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz: libFuzzer runtime missing ($runtime): install $pkg" >&2
    exit 1
  fi
  echo "fuzz: installing $pkg (libFuzzer runtime)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null; }
fi

export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
echo "== configure $build (sources: $src)"
cmake -S fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCDP_SYNC_SRC="$src" >/dev/null
echo "== build ${targets[*]}"
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

mkdir -p "$build/artifacts" "$build/logs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=()
for t in "${targets[@]}"; do
  work=$build/corpus/$t
  mkdir -p "$work"
  log=$build/logs/$t.log
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  echo "== fuzz $t for ${seconds}s"
  set +e
  # New inputs go to the first corpus folder (build/); the seeds folder is only read.
  "$build/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "${dict[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  # libFuzzer's last status line: "#N  DONE  cov: .. ft: .. corp: C/SIZE ..."
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2 || true)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok, ${execs:-?} execs in ${took:-$seconds} s, corpus ${corpus:-?} inputs"
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} execs, corpus ${corpus:-?} inputs; input: ${artifact:-none}; log: $log"
    grep -m1 -E 'ERROR: |runtime error|fuzz_(config|cdp_reply): |deadly signal' "$log" | sed 's/^/  /' || true
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran clean"
