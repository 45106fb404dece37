#!/usr/bin/env bash
# The README's first command: cdp-sync's main job on an embedded default.
# Installs what is missing, builds, starts a throwaway PostgreSQL (port 55433) and the CDP
# simulator (port 18080), loads demo customers and groups, runs a full resync, changes some
# rows, runs one incremental cycle, and prints the CDP's state next to the database's.
# Everything it started is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh
echo "== build"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target cdp-sync cdp-sync-sim
bin=$root/build/release

work=$(mktemp -d /tmp/cdp-sync-quickstart.XXXXXX)
chmod 755 "$work"  # the cluster runs as `postgres` when we are root: it must reach $work/pg
pgdir=$work/pg
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  bash "$root/scripts/pg-cluster.sh" stop "$pgdir" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== start PostgreSQL and the simulator"
dsn=$(bash scripts/pg-cluster.sh start "$pgdir" 55433)
"$bin/cdp-sync-sim" --port 18080 --seed-demo >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/sim.out" && break; sleep 0.1; done
grep "listening on" "$work/sim.out" || { cat "$work/sim.err"; exit 1; }

echo "== demo data: 1000 customers in 4 groups"
psql -q -v ON_ERROR_STOP=1 "$dsn" <<'SQL'
CREATE SCHEMA crm;
CREATE TABLE crm.customer_group (customer_id bigint, group_name text, updated_at timestamptz DEFAULT now());
CREATE TABLE crm.cdp_group (name text PRIMARY KEY, description text, folder text);
INSERT INTO crm.cdp_group VALUES
  ('vip', 'Customers with lifetime value over 10k', 'cdp-sync demo'),
  ('newsletter', 'Opted in to the newsletter', 'cdp-sync demo'),
  ('churn-risk', 'No order for 180 days', 'cdp-sync demo'),
  ('beijing', 'Lives in Beijing', 'cdp-sync demo');
INSERT INTO crm.customer_group (customer_id, group_name)
  SELECT id, 'vip' FROM generate_series(1, 1000) id WHERE id % 10 = 0
  UNION ALL SELECT id, 'newsletter' FROM generate_series(1, 1000) id WHERE id % 3 = 0
  UNION ALL SELECT id, 'churn-risk' FROM generate_series(1, 1000) id WHERE id % 7 = 0
  UNION ALL SELECT id, 'beijing' FROM generate_series(1, 1000) id WHERE id % 5 = 1;
-- Rows the CDP cannot take: reported and skipped, never fatal.
INSERT INTO crm.customer_group (customer_id, group_name) VALUES (NULL, 'vip'), (-5, 'vip'), (12, '');
SQL

sed -e "s#/tmp/cdp-sync-quickstart/cdp-sync.log#$work/cdp-sync.log#" config/quickstart.yaml >"$work/config.yaml"
export CDP_TOKEN=sim-token
cs() { "$bin/cdp-sync" --config "$work/config.yaml" "$@"; }

echo "== cdp-sync plan (dry run)"
cs plan
echo "== cdp-sync resync (full)"
cs resync
echo "== change the database: 40 customers leave 'newsletter', 25 join 'vip'"
psql -q -v ON_ERROR_STOP=1 "$dsn" <<'SQL'
DELETE FROM crm.customer_group WHERE group_name = 'newsletter' AND customer_id <= 120;
INSERT INTO crm.customer_group (customer_id, group_name) SELECT id, 'vip' FROM generate_series(501, 525) id;
SQL
echo "== cdp-sync run --once (incremental)"
cs run --once
echo "== cdp-sync status"
cs status || true

echo "== the database and the CDP side by side"
printf '%-12s %10s %10s\n' group database cdp
for g in vip newsletter churn-risk beijing; do
  want=$(psql -tA "$dsn" -c "SELECT count(DISTINCT customer_id) FROM crm.customer_group WHERE group_name = '$g' AND customer_id > 0")
  have=$(cs api groups list --search "$g" --all | python3 -c "import json,sys; gs=[x for x in json.load(sys.stdin) if x['name']=='$g']; print(gs[0]['customerTotal'] if gs else 0)")
  printf '%-12s %10s %10s\n' "$g" "$want" "$have"
  [ "$want" = "$have" ] || { echo "MISMATCH for $g" >&2; exit 1; }
done
echo "== quickstart done: the CDP matches the database"
