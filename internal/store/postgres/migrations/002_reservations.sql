-- Named reservations, replacing 001's unused single-tenant table. One row
-- per name: the current grant (holder '' when released). Tokens come from
-- the lease_token sequence shared with job leases.
DROP TABLE IF EXISTS reservations;

CREATE TABLE reservations (
    tenant      text   NOT NULL,
    name        text   NOT NULL,
    holder      text   NOT NULL DEFAULT '',
    token       bigint NOT NULL DEFAULT 0,
    acquired_at bigint NOT NULL DEFAULT 0,
    expires_at  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, name)
);

-- The latest grants of each name (trimmed to 10). ended is '' while the
-- grant is the name's current one; its expiry is then the reservation's.
CREATE TABLE reservation_history (
    tenant      text   NOT NULL,
    name        text   NOT NULL,
    token       bigint NOT NULL,
    holder      text   NOT NULL,
    acquired_at bigint NOT NULL,
    ended_at    bigint NOT NULL DEFAULT 0,
    ended       text   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, name, token)
);
