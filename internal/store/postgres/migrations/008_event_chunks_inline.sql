-- A transaction's events are one event_chunks row, a few KB for a batch.
-- Rows over 2 KB were compressed (pglz) and moved out of line into the
-- TOAST table, on the busiest insert path of the store: a few percent of
-- the database's CPU under load, and more WAL. The chunk is read back
-- rarely (other servers' followers, resumes) and retention deletes it
-- soon, so it stays in the row, uncompressed, up to a page.
ALTER TABLE event_chunks SET (toast_tuple_target = 8160);
ALTER TABLE event_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
