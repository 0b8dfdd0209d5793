-- Named reservations (leases on names, for leader election and user
-- singletons). One row per name: the current grant (holder '' when
-- released). Tokens come from the 'token' counter shared with job leases.
CREATE TABLE reservations (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    holder      TEXT    NOT NULL DEFAULT '',
    token       INTEGER NOT NULL DEFAULT 0,
    acquired_at INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

-- The latest grants of each name (trimmed to 10). ended is '' while the
-- grant is the name's current one; its expiry is then the reservation's.
CREATE TABLE reservation_history (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    token       INTEGER NOT NULL,
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    ended_at    INTEGER NOT NULL DEFAULT 0,
    ended       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, name, token)
) WITHOUT ROWID;
