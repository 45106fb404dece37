-- The cdp_sync schema as release 0.1.0 (commit 7ef31ad) left it: migrations 1 and 2,
-- frozen here so the upgrade test starts from exactly what the previous release wrote.
-- "@." stands for the quoted schema name and a dot.
CREATE TABLE @.schema_version (version int PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE @.group_map (
    name text PRIMARY KEY,
    group_id bigint,
    type int NOT NULL DEFAULT 1,
    description text,
    folder_id bigint,
    created_by_us boolean NOT NULL DEFAULT false,
    snapshot_at timestamptz,
    error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE @.remote_member (
    group_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    PRIMARY KEY (group_id, customer_id)
);
CREATE INDEX remote_member_customer ON @.remote_member (customer_id);
-- Unlogged: lost only on a server crash, together with the cursors, which then restart.
CREATE UNLOGGED TABLE @.snapshot_cursor (
    snapshot_id bigint NOT NULL,
    group_id bigint NOT NULL,
    next_page bigint NOT NULL DEFAULT 1,
    page_size int NOT NULL,
    done boolean NOT NULL DEFAULT false,
    PRIMARY KEY (snapshot_id, group_id)
);
CREATE UNLOGGED TABLE @.snapshot_member (
    snapshot_id bigint NOT NULL,
    group_id bigint NOT NULL,
    customer_id bigint NOT NULL
);
CREATE INDEX snapshot_member_group ON @.snapshot_member (snapshot_id, group_id);
CREATE TABLE @.run (
    id bigserial PRIMARY KEY,
    mode text NOT NULL,
    phase text NOT NULL DEFAULT 'source',
    status text NOT NULL DEFAULT 'running',
    force boolean NOT NULL DEFAULT false,
    pid int,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows_read bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    adds bigint NOT NULL DEFAULT 0,
    removes bigint NOT NULL DEFAULT 0,
    ops_planned bigint NOT NULL DEFAULT 0,
    ops_done bigint NOT NULL DEFAULT 0,
    ops_failed bigint NOT NULL DEFAULT 0,
    ops_permanent bigint NOT NULL DEFAULT 0,
    calls bigint NOT NULL DEFAULT 0,
    retries bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    member_pages bigint NOT NULL DEFAULT 0,
    groups_created bigint NOT NULL DEFAULT 0,
    group_errors bigint NOT NULL DEFAULT 0,
    error text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX run_status ON @.run (status) WHERE status = 'running';
CREATE TABLE @.op (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES @.run (id),
    customer_id bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('add', 'remove', 'set')),
    group_ids bigint[] NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'done', 'failed', 'permanent', 'superseded')),
    attempts int NOT NULL DEFAULT 0,
    http_status int,
    cdp_code int,
    msg text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX op_run_state ON @.op (run_id, state, id);
CREATE INDEX op_open ON @.op (customer_id) WHERE state IN ('pending', 'failed', 'permanent');
CREATE TABLE IF NOT EXISTS @.resync_request (
    id bigserial PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by text NOT NULL DEFAULT '',
    force boolean NOT NULL DEFAULT false,
    only_groups text[] NOT NULL DEFAULT '{}',
    started_at timestamptz,
    finished_at timestamptz,
    run_id bigint,
    outcome text,
    exit_code int,
    message text
);
CREATE TABLE IF NOT EXISTS @.daemon_leader (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pid int,
    host text,
    started_at timestamptz,
    phase text,
    phase_since timestamptz,
    heartbeat_at timestamptz,
    next_full_at timestamptz
);
DROP INDEX @.run_status;
CREATE INDEX run_open ON @.run (status) WHERE status IN ('running', 'interrupted');
INSERT INTO @.schema_version (version, description) VALUES (1, 'initial schema'), (2, 'daemon control tables; interrupted runs');
