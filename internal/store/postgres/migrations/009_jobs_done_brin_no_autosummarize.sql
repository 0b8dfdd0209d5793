-- The BRIN index of finished jobs no longer asks autovacuum to summarize
-- each new block range as rows reach it. Those requests go to a queue of
-- 256 work items shared by the whole server; at thousands of finished jobs
-- a second it stays full, and every insert that starts a new range then
-- wrote "request for BRIN range summarization ... was not recorded" with
-- its statement to the server log (608 times in one 30-second benchmark).
-- Ranges are summarized by the vacuums of jobs_done instead (autovacuum
-- runs them as inserts accumulate); until then retention reads the newest,
-- unsummarized ranges in full, which are the few it would read anyway.
ALTER INDEX jobs_done_finished SET (autosummarize = off);
