#!/usr/bin/env bash
# The scale measurement of docs/benchmarks.md ("Scale"): 10M memberships over 200 groups, 5% of
# the customers changed, rate limit off, three cdp-sync commands in turn against one simulator
# and one database, each measured: `plan --full` from an empty mirror (reads every member
# page), `run --once` (the change, from the mirror), `resync` (every page again, and the
# change undone). Prints the machine, the command, the commit and one markdown table: wall
# time, CPU, peak RSS of cdp-sync, PostgreSQL temp files (written, and the peak pgsql_tmp
# size), database growth and the cdp_sync schema's size.
#
#   bench/scale.sh                          10M memberships, 200 groups (~1 hour on 2 busy cores)
#   bench/scale.sh --memberships 1000000    any scenario_bench option overrides the defaults
#
# Environment as bench/run.sh: BUILD_DIR, CDP_SYNC_TEST_DSN (else a throwaway cluster on
# CDP_SYNC_BENCH_PGPORT, default 55441), JSON_OUT=FILE for every figure unrounded.
# The simulator (in scenario_bench) holds 10M memberships in about 230 MB, plus the 160 MB
# seed list; the database tables are generated in PostgreSQL (about 1 GB for 10M).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
case "${1:-}" in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac

. bench/common.sh
bench_build cdp-sync scenario_bench
bench_postgres

args=(--memberships 10000000 --groups 200 --changed-pct 5 --qps 0 --cycle plan-full,incremental,resync
      --no-prime --naive off --format scale "$@")
started=$(date -u +%s)
commit=$(bench_commit_line)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
rows=$("$build/bench/scenario_bench" "${args[@]}" ${JSON_OUT:+--json-out "$JSON_OUT"}) || status=$?
elapsed=$(($(date -u +%s) - started))

echo "## cdp-sync at scale"
echo
echo "- command: \`bench/scale.sh${*:+ $*}\` = \`scenario_bench ${args[*]}\` (BUILD_DIR=$build), $(date -u '+%Y-%m-%d %H:%M UTC'), took $((elapsed / 60)) min $((elapsed % 60)) s"
echo "- commit: $commit (at the start)"
echo "- machine: $(bench_machine_line); load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "- PostgreSQL: $(psql "$CDP_SYNC_TEST_DSN" -Atc "SELECT split_part(version(), ' ', 2) || ', work_mem ' || current_setting('work_mem') || ', shared_buffers ' || current_setting('shared_buffers')" 2>/dev/null || echo unknown)"
echo
"$build/bench/scenario_bench" --header scale
echo "$rows"
exit $status
