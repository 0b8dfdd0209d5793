-- Events are numbered after their transaction commits, not inside it.
-- Until 008 every event-emitting transaction ended by locking the one
-- event_seq counter row until its commit (numbers in commit order), which
-- serialized all of them through their commits' WAL flushes: about a
-- thousand small transactions a second, whatever the cores. Now a
-- transaction appends its events to event_inbox (no shared lock), and a
-- sequencer — any server, right after its commits, and every second —
-- moves what has committed there into event_chunks under the counter's
-- lock, numbered in inbox order. A transaction that depends on another's
-- effects started after that one committed, so its inbox row comes later,
-- and rows still uncommitted when a pass runs cannot be depended on by
-- anything that pass moves: the log stays dense and causally ordered.
CREATE TABLE event_inbox (
    id   bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    n    integer NOT NULL,
    at   bigint  NOT NULL,
    data bytea   NOT NULL
);
