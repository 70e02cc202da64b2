-- Landing zone of the pipeline. Applied idempotently by `apply_postgres_schema`.
CREATE SCHEMA IF NOT EXISTS staging;

-- One row per user, keyed by login.uuid so replays of a seed/page never land twice.
CREATE TABLE IF NOT EXISTS staging.users (
    id              uuid PRIMARY KEY,
    first_name      text        NOT NULL,
    last_name       text        NOT NULL,
    gender          text        NOT NULL,
    address         text        NOT NULL,
    post_code       text        NOT NULL,
    email           text        NOT NULL,
    username        text        NOT NULL,
    dob             timestamptz NOT NULL,
    registered_date timestamptz NOT NULL,
    phone           text        NOT NULL,
    picture         text        NOT NULL,
    nat             text        NOT NULL,
    fetched_at      timestamptz NOT NULL,
    landed_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    raw             json        NOT NULL  -- json, not jsonb: kept as received, no binary conversion cost
);

-- Records that failed validation: kept with the reason, never dropped.
CREATE TABLE IF NOT EXISTS staging.rejected (
    rejected_id bigserial   PRIMARY KEY,
    reason      text        NOT NULL,
    raw         text        NOT NULL,
    source      text        NOT NULL DEFAULT '',
    rejected_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per ingest run; the seed/page cursor lets the next run continue the sequence.
CREATE TABLE IF NOT EXISTS staging.ingest_runs (
    run_id      bigserial   PRIMARY KEY,
    seed        text        NOT NULL,
    first_page  integer     NOT NULL,
    last_page   integer,
    requested   bigint      NOT NULL DEFAULT 0,
    landed      bigint      NOT NULL DEFAULT 0,
    duplicates  bigint      NOT NULL DEFAULT 0,
    rejected    bigint      NOT NULL DEFAULT 0,
    status      text        NOT NULL DEFAULT 'running',
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
-- The cursor is (generation, last_page): generation 1 is the seed itself, k > 1 the derived seed '<seed>~k'
-- (a seed's sequence ends at the provider's last page). limited_by: what held the run's rate down
-- ('rate', 'quota' or 'source'); NULL for runs recorded before it existed.
-- Each change is made only when it is missing: ALTER TABLE and CREATE INDEX lock the table even when
-- IF NOT EXISTS turns them into no-ops, so a bootstrap would wait behind a running ingest's transaction.
DO $$
BEGIN
    IF to_regclass('staging.ingest_runs_seed') IS NULL THEN
        CREATE INDEX ingest_runs_seed ON staging.ingest_runs (seed, last_page);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'staging'
                   AND table_name = 'ingest_runs' AND column_name = 'generation') THEN
        ALTER TABLE staging.ingest_runs ADD COLUMN generation integer NOT NULL DEFAULT 1;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'staging'
                   AND table_name = 'ingest_runs' AND column_name = 'limited_by') THEN
        ALTER TABLE staging.ingest_runs ADD COLUMN limited_by text;
    END IF;
    IF to_regclass('staging.ingest_runs_cursor') IS NULL THEN
        CREATE INDEX ingest_runs_cursor ON staging.ingest_runs (seed, generation, last_page);
    END IF;
    IF to_regclass('staging.users_landed_at_brin') IS NULL THEN
        CREATE INDEX users_landed_at_brin ON staging.users USING brin (landed_at);
    END IF;
    IF to_regclass('staging.rejected_at_brin') IS NULL THEN
        CREATE INDEX rejected_at_brin ON staging.rejected USING brin (rejected_at);
    END IF;
END
$$;

-- Debezium reads changes of staging.users only, through this publication (pgoutput).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'userstream_users') THEN
        CREATE PUBLICATION userstream_users FOR TABLE staging.users WITH (publish = 'insert, update');
    END IF;
END
$$;

-- Retention (`userstream.ingest.retention`, the staging_retention DAG) deletes by landing time, through the
-- BRIN indexes above: they cost next to nothing on insert, and rows land in time order. Deletes are not
-- published, so the pipeline downstream never sees them.
