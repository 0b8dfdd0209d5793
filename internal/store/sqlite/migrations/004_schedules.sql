-- Cron schedules, one row per tenant and name. spec is the job body
-- (job.Spec as JSON); next_run_at is 0 while paused. version grows with
-- every change: a tick fires only as a compare-and-swap on (version,
-- next_run_at).
CREATE TABLE schedules (
    tenant          TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    cron            TEXT    NOT NULL,
    timezone        TEXT    NOT NULL,
    spec            TEXT    NOT NULL,
    overlap         TEXT    NOT NULL,
    paused          INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL,
    next_run_at     INTEGER NOT NULL DEFAULT 0,
    last_run_at     INTEGER NOT NULL DEFAULT 0,
    last_job_id     TEXT    NOT NULL DEFAULT '',
    skipped         INTEGER NOT NULL DEFAULT 0,
    last_skipped_at INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

-- The scheduler's scan of due schedules.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE paused = 0 AND next_run_at > 0;
