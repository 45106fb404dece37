#!/usr/bin/env bash
# The scenario grid of docs/benchmarks.md: builds cdp-sync and bench/scenario_bench, starts a
# throwaway PostgreSQL unless CDP_SYNC_TEST_DSN is set, runs every scenario and prints one
# markdown table (with the machine and the command above it).
#
#   bench/run.sh          the default grid (~15 min on 2 cores): every rate-limit-off row; at
#                         50 QPS only the rows whose writes take at most ~1 minute; then
#                         issue 12's reference job (initial load 500 x 10 at 100 QPS, sliding
#                         and fixed window, 3 runs each)
#   bench/run.sh --all    every row at 50 QPS too (about 2.5 hours: 1M x 50% alone is 45 min a cycle)
#
# Environment: BUILD_DIR (default build/release), CDP_SYNC_TEST_DSN (default: a throwaway
# cluster on port CDP_SYNC_BENCH_PGPORT, default 55441), JSON_OUT=FILE to also keep each
# scenario's JSON line. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
all=0
for a in "$@"; do
  case "$a" in
  --all) all=1 ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "usage: bench/run.sh [--all]" >&2; exit 2 ;;
  esac
done

. bench/common.sh
bench_build cdp-sync scenario_bench
bench_postgres

bench="$build/bench/scenario_bench"
qps=50
started=$(date -u +%s)
commit=$(bench_commit_line)
rows=()
skipped=()
failed=0

# Write calls and changed memberships of a scenario, as scenario_bench generates it:
# every (100/pct)-th customer changes, in turn +1 group (1 call), -1 (1 call), -2 +2 (2 calls).
calls_of() {  # memberships pct
  local customers=$(($1 / 5)) stride=$((100 / $2))
  local n=$((customers / stride))
  echo $(( (n / 3) * 4 + (n % 3 >= 1 ? 1 : 0) + (n % 3 >= 2 ? 2 : 0) ))
}

run_row() {  # memberships pct qps cycle
  local out
  out=$("$bench" --memberships "$1" --changed-pct "$2" --qps "$3" --cycle "$4" ${JSON_OUT:+--json-out "$JSON_OUT"}) \
    || failed=1
  rows+=("$out")
  echo "$out" >&2
}

for m in 10000 100000 1000000; do
  for pct in 5 50; do
    for cycle in incremental resync; do
      run_row "$m" "$pct" 0 "$cycle"
      calls=$(calls_of "$m" "$pct")
      secs=$((calls / qps))
      if [ "$all" = 1 ] || [ "$secs" -le 60 ]; then
        run_row "$m" "$pct" "$qps" "$cycle"
      else
        skipped+=("| $([ "$m" -ge 1000000 ] && echo "$((m / 1000000))M" || echo "$((m / 1000))k") | ${pct}% | $qps QPS | $([ "$cycle" = resync ] && echo "full resync" || echo incremental) | skipped: $calls write calls at $qps QPS take $((secs / 60)) min $((secs % 60)) s; \`bench/run.sh --all\` runs it |")
      fi
    done
  done
done

# Issue 12's reference job: an initial load of 500 customers x 10 groups at 100 QPS, against a
# sliding and a fixed window, three runs each (the median is printed below each table).
reference=()
for window in sliding fixed; do
  out=$("$bench" --job initial-load --customers 500 --groups 10 --qps 100 --window "$window" --repeat 3) || failed=1
  reference+=("$out")
  echo "$out" >&2
done

elapsed=$(($(date -u +%s) - started))
echo
echo "## cdp-sync scenario benchmark"
echo
echo "- command: \`bench/run.sh${*:+ $*}\` (BUILD_DIR=$build), $(date -u '+%Y-%m-%d %H:%M UTC'), took $((elapsed / 60)) min $((elapsed % 60)) s"
echo "- commit: $commit (at the start)"
echo "- machine: $(bench_machine_line), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- data: memberships over 50 groups, 5 per customer; page size 1000, max_in_flight 8; the mirror primed by a resync first; naive = one call per changed membership, sequential"
echo
"$bench" --header
printf '%s\n' "${rows[@]}"
echo
echo "Reference job (issue 12): initial load, 500 customers x 10 groups, 100 QPS; wall ÷ (calls ÷ QPS) per run:"
for t in "${reference[@]}"; do
  echo
  printf '%s\n' "$t"
done
if [ ${#skipped[@]} -gt 0 ]; then
  echo
  echo "Rate-limited rows not run by default:"
  echo
  echo "| memberships | changed customers | limit | cycle | why |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${skipped[@]}"
fi
exit $failed
