-- Cron schedules, one row per tenant and name. spec is the job body
-- (job.Spec as JSON); next_run_at is 0 while paused. version grows with
-- every change: a tick fires only as a compare-and-swap on (version,
-- next_run_at), under the row's lock. Names sort bytewise (COLLATE "C"),
-- as in the SQLite store.
CREATE TABLE schedules (
    tenant          text COLLATE "C" NOT NULL,
    name            text COLLATE "C" NOT NULL,
    cron            text    NOT NULL,
    timezone        text    NOT NULL,
    spec            text    NOT NULL,
    overlap         text    NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    version         bigint  NOT NULL,
    next_run_at     bigint  NOT NULL DEFAULT 0,
    last_run_at     bigint  NOT NULL DEFAULT 0,
    last_job_id     text    NOT NULL DEFAULT '',
    skipped         bigint  NOT NULL DEFAULT 0,
    last_skipped_at bigint  NOT NULL DEFAULT 0,
    created_at      bigint  NOT NULL,
    updated_at      bigint  NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- The scheduler's scan of due schedules.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused AND next_run_at > 0;
