-- Retention finds finished jobs by finished_at through a BRIN index instead
-- of a B-tree: rows reach jobs_done in about finished_at order, so block
-- ranges summarize them well, and finishing a job no longer inserts an
-- entry into one more B-tree (jobs_done takes a row per finished job, the
-- busiest insert of the store).
DROP INDEX jobs_done_finished;
CREATE INDEX jobs_done_finished ON jobs_done USING brin (finished_at) WITH (pages_per_range = 32, autosummarize = on);
