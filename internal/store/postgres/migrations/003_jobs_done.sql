-- Finished jobs leave the hot jobs table. jobs keeps only scheduled,
-- queued, running and retrying rows, so the claim index, the table and its
-- vacuums stay small whatever the retention; a job that ends (succeeded,
-- failed, canceled) is moved to jobs_done in the transaction that ends it
-- (DELETE ... RETURNING * feeding an INSERT), and RetryJob moves it back.
--
-- jobs_done has exactly jobs' columns in jobs' order (the move is
-- "INSERT INTO jobs_done SELECT * FROM moved"): a later migration that adds
-- a column to one table adds it to the other.
CREATE TABLE jobs_done (LIKE jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE jobs_done ADD PRIMARY KEY (id);

-- Newest-first lists of a tenant's jobs.
CREATE INDEX jobs_done_tenant ON jobs_done (tenant, id);
-- The dead-letter list: a tenant's failed jobs, newest first.
CREATE INDEX jobs_done_failed ON jobs_done (tenant, id) WHERE state = 'failed';
-- Batch membership and counts.
CREATE INDEX jobs_done_batch ON jobs_done (batch_id, state) WHERE batch_id <> '';
-- Retention.
CREATE INDEX jobs_done_finished ON jobs_done (finished_at);

-- Finished jobs already in jobs move now; jobs no longer needs an index
-- for their retention.
WITH moved AS (DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'canceled') RETURNING *)
INSERT INTO jobs_done SELECT * FROM moved;
DROP INDEX jobs_finished;
