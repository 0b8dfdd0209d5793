-- Gantry PostgreSQL schema, version 1. Applied inside the schema chosen by
-- postgres.Config.Schema (search_path is set to it).
--
-- Times are Unix nanoseconds in bigint columns (0 means "no time") and
-- durations milliseconds, as in the SQLite store: columns are NOT NULL with
-- neutral defaults so that partial indexes stay simple and rows scan
-- without NULL checks.

CREATE TABLE jobs (
    id               uuid     NOT NULL PRIMARY KEY,
    tenant           text     NOT NULL,
    type             text     NOT NULL,
    name             text     NOT NULL DEFAULT '',
    queue            text     NOT NULL,
    priority         smallint NOT NULL DEFAULT 0,
    params           bytea,
    package          text     NOT NULL DEFAULT '',
    batch_id         text     NOT NULL DEFAULT '',
    run_at           bigint   NOT NULL DEFAULT 0,
    max_attempts     integer  NOT NULL,
    timeout_ms       bigint   NOT NULL DEFAULT 0,
    unique_key       text     NOT NULL DEFAULT '',
    singleton_key    text     NOT NULL DEFAULT '',
    tags             text     NOT NULL DEFAULT '',
    metadata         text     NOT NULL DEFAULT '',
    state            text     NOT NULL,
    attempt          integer  NOT NULL DEFAULT 0,
    attempt_base     integer  NOT NULL DEFAULT 0,
    progress_pct     integer  NOT NULL DEFAULT 0,
    progress_msg     text     NOT NULL DEFAULT '',
    result           bytea,
    error            text     NOT NULL DEFAULT '',
    cancel_requested boolean  NOT NULL DEFAULT false,
    created_at       bigint   NOT NULL,
    started_at       bigint   NOT NULL DEFAULT 0,
    finished_at      bigint   NOT NULL DEFAULT 0,
    worker_id        text     NOT NULL DEFAULT '',
    token            bigint   NOT NULL DEFAULT 0,
    lease_expires_at bigint   NOT NULL DEFAULT 0,
    lease_ttl_ms     bigint   NOT NULL DEFAULT 0,
    attempt_worker   text     NOT NULL DEFAULT '',
    attempt_outcome  text     NOT NULL DEFAULT '',
    -- Ended attempts, except the latest one: that one is described by
    -- attempt, attempt_worker, token, started_at and, once it ends the job,
    -- attempt_outcome, error and finished_at. So the hot path (lease, then a
    -- terminal outcome) never rewrites JSON.
    attempts         jsonb    NOT NULL DEFAULT '[]'
) WITH (fillfactor = 80);

-- The claim: queued jobs of one tenant and queue, highest priority first,
-- then oldest (ids are UUIDv7, time-ordered).
CREATE INDEX jobs_claim ON jobs (tenant, queue, priority DESC, id) WHERE state = 'queued';
-- Promotion of scheduled and retrying jobs.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
-- Rescue of expired leases; also the set of running jobs.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- Unique keys among non-terminal jobs.
CREATE UNIQUE INDEX jobs_unique ON jobs (tenant, unique_key)
    WHERE unique_key <> '' AND state IN ('scheduled', 'queued', 'running', 'retrying');
-- At most one running job per singleton key.
CREATE UNIQUE INDEX jobs_singleton ON jobs (tenant, singleton_key)
    WHERE singleton_key <> '' AND state = 'running';
-- Batch membership and counts.
CREATE INDEX jobs_batch ON jobs (batch_id, state) WHERE batch_id <> '';
-- Retention of finished jobs.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'failed', 'canceled');

CREATE TABLE batches (
    id                 text    NOT NULL PRIMARY KEY,
    tenant             text    NOT NULL,
    name               text    NOT NULL DEFAULT '',
    created_at         bigint  NOT NULL,
    closed             boolean NOT NULL DEFAULT false,
    done               boolean NOT NULL DEFAULT false,
    finished_at        bigint  NOT NULL DEFAULT 0,
    on_complete        text    NOT NULL DEFAULT '',
    on_complete_job_id text    NOT NULL DEFAULT ''
);

CREATE TABLE workers (
    id             text    NOT NULL PRIMARY KEY,
    tenant         text    NOT NULL DEFAULT '',
    name           text    NOT NULL DEFAULT '',
    host           text    NOT NULL DEFAULT '',
    types          text    NOT NULL DEFAULT '',
    queues         text    NOT NULL DEFAULT '',
    capacity       integer NOT NULL DEFAULT 0,
    labels         text    NOT NULL DEFAULT '',
    lease_ttl_ms   bigint  NOT NULL DEFAULT 0,
    state          text    NOT NULL,
    created_at     bigint  NOT NULL,
    last_seen      bigint  NOT NULL,
    last_active_at bigint  NOT NULL,
    drained_at     bigint  NOT NULL DEFAULT 0
) WITH (fillfactor = 70);

CREATE TABLE queues (
    tenant text    NOT NULL,
    name   text    NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, name)
);

-- The event log: every transaction's events packed into one row, keyed by
-- the sequence number of its last event. Append-only.
CREATE TABLE event_chunks (
    seq       bigint NOT NULL PRIMARY KEY,
    first_seq bigint NOT NULL,
    at        bigint NOT NULL,
    data      bytea  NOT NULL
);

-- High-water marks: the event sequence (its row lock orders the tails of
-- event-emitting transactions, so sequence order is commit order).
CREATE TABLE counters (
    name  text   NOT NULL PRIMARY KEY,
    value bigint NOT NULL
) WITH (fillfactor = 50);
INSERT INTO counters (name, value) VALUES ('event_seq', 0);

-- Fencing tokens: strictly increasing, never reused, across restarts.
CREATE SEQUENCE lease_token AS bigint;

-- Webhooks: subscriptions that POST matching events to a URL. Each keeps
-- its own cursor into the event log.
CREATE TABLE webhooks (
    id                text    NOT NULL PRIMARY KEY,
    tenant            text    NOT NULL,
    url               text    NOT NULL,
    kinds             text    NOT NULL DEFAULT '',
    batch_id          text    NOT NULL DEFAULT '',
    secret            text    NOT NULL,
    created_at        bigint  NOT NULL,
    cursor            bigint  NOT NULL DEFAULT 0,
    last_delivered_at bigint  NOT NULL DEFAULT 0,
    last_error        text    NOT NULL DEFAULT '',
    failures          integer NOT NULL DEFAULT 0
);

-- Named reservations (leases on names, for leader election and user
-- singletons), used by the reservation service of a later version.
CREATE TABLE reservations (
    name       text   NOT NULL PRIMARY KEY,
    holder     text   NOT NULL DEFAULT '',
    token      bigint NOT NULL DEFAULT 0,
    expires_at bigint NOT NULL DEFAULT 0,
    ttl_ms     bigint NOT NULL DEFAULT 0,
    history    jsonb  NOT NULL DEFAULT '[]'
);
