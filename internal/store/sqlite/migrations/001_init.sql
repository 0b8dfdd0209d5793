-- Gantry SQLite schema, version 1.
-- Columns are NOT NULL with neutral defaults ('' and 0: 0 is "no time")
-- so that partial indexes stay simple and rows scan without NULL checks.

CREATE TABLE jobs (
    id               TEXT    NOT NULL UNIQUE,
    tenant           TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    name             TEXT    NOT NULL DEFAULT '',
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    params           BLOB,
    package          TEXT    NOT NULL DEFAULT '',
    batch_id         TEXT    NOT NULL DEFAULT '',
    run_at           INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout_ms       INTEGER NOT NULL DEFAULT 0,
    unique_key       TEXT    NOT NULL DEFAULT '',
    singleton_key    TEXT    NOT NULL DEFAULT '',
    tags             TEXT    NOT NULL DEFAULT '',
    metadata         TEXT    NOT NULL DEFAULT '',
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    attempt_base     INTEGER NOT NULL DEFAULT 0,
    progress_pct     INTEGER NOT NULL DEFAULT 0,
    progress_msg     TEXT    NOT NULL DEFAULT '',
    result           BLOB,
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0,
    worker_id        TEXT    NOT NULL DEFAULT '',
    token            INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    lease_ttl_ms     INTEGER NOT NULL DEFAULT 0,
    attempt_worker   TEXT    NOT NULL DEFAULT '',
    attempt_outcome  TEXT    NOT NULL DEFAULT '',
    -- Ended attempts, as a JSON array, except the latest attempt: that one
    -- is described by attempt, attempt_worker, token, started_at and, once
    -- it ends the job, attempt_outcome, error and finished_at. So the hot
    -- path (lease, then a terminal outcome) never rewrites JSON.
    attempts         TEXT    NOT NULL DEFAULT '[]'
);

-- The claim: queued jobs of one tenant and queue, highest priority first,
-- then oldest (rowid, implicit at the end of every index).
CREATE INDEX jobs_claim ON jobs (tenant, queue, priority DESC) WHERE state = 'queued';
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
-- The dead-letter view.
CREATE INDEX jobs_failed ON jobs (tenant, id) WHERE state = 'failed';

CREATE TABLE batches (
    id                 TEXT    NOT NULL PRIMARY KEY,
    tenant             TEXT    NOT NULL,
    name               TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    closed             INTEGER NOT NULL DEFAULT 0,
    done               INTEGER NOT NULL DEFAULT 0,
    finished_at        INTEGER NOT NULL DEFAULT 0,
    on_complete        TEXT    NOT NULL DEFAULT '',
    on_complete_job_id TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE workers (
    id             TEXT    NOT NULL PRIMARY KEY,
    tenant         TEXT    NOT NULL DEFAULT '',
    name           TEXT    NOT NULL DEFAULT '',
    host           TEXT    NOT NULL DEFAULT '',
    types          TEXT    NOT NULL DEFAULT '',
    queues         TEXT    NOT NULL DEFAULT '',
    capacity       INTEGER NOT NULL DEFAULT 0,
    labels         TEXT    NOT NULL DEFAULT '',
    lease_ttl_ms   INTEGER NOT NULL DEFAULT 0,
    state          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL,
    drained_at     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE queues (
    tenant TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

-- The event log: every transaction's events packed into one row, keyed by
-- the sequence number of its last event. Append-only, no secondary index.
CREATE TABLE event_chunks (
    seq       INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    data      BLOB    NOT NULL
);

-- High-water marks that must only grow: the fencing token, the event sequence.
CREATE TABLE counters (
    name  TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('token', 0), ('event_seq', 0), ('event_oldest', 1);
