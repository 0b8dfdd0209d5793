-- Webhooks: subscriptions that POST matching events to a URL. Each keeps
-- its own cursor into the event log.
CREATE TABLE webhooks (
    id                TEXT    NOT NULL PRIMARY KEY,
    tenant            TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    kinds             TEXT    NOT NULL DEFAULT '',
    batch_id          TEXT    NOT NULL DEFAULT '',
    secret            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    cursor            INTEGER NOT NULL DEFAULT 0,
    last_delivered_at INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT    NOT NULL DEFAULT '',
    failures          INTEGER NOT NULL DEFAULT 0
);
