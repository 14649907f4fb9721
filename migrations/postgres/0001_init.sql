-- 0001_init: Keyturn's initial schema (PostgreSQL).
--
-- Every time is a BIGINT of unix MICROseconds, UTC, in both dialects. One
-- representation means exact comparisons (WHERE idle_expires_at > $now) with
-- the same result on SQLite and PostgreSQL, microsecond precision everywhere,
-- and no driver-specific time formats: modernc SQLite would otherwise store
-- times as text in whatever format the driver chose. storage/sqlstore's row
-- types convert at the boundary. NULL only where "never" is a value
-- (rotated_at, revoked_at).

-- One row per login session; every refresh token of the session is
-- recomputed from (id, generation, salt, key_id) (DESIGN.md).
CREATE TABLE families (
    id                  TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    scope               TEXT NOT NULL,
    generation          BIGINT NOT NULL CHECK (generation >= 0),
    salt                BYTEA NOT NULL,
    key_id              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    rotated_at          BIGINT,
    revoked_at          BIGINT,
    revoke_reason       TEXT NOT NULL DEFAULT ''
);
-- (user_id|client_id, created_at): filter and "newest first" of ListFamilies,
-- and the filter of RevokeFamilies / user disable and delete.
CREATE INDEX families_user_id_created_at ON families (user_id, created_at);
CREATE INDEX families_client_id_created_at ON families (client_id, created_at);
-- DeleteFamilies: absolute_expires_at < $1 OR revoked_at < $2.
CREATE INDEX families_absolute_expires_at ON families (absolute_expires_at);
CREATE INDEX families_revoked_at ON families (revoked_at);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Access tokens revoked by RFC 7009, kept until their exp.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

CREATE TABLE signing_keys (
    id                TEXT PRIMARY KEY,
    algorithm         TEXT NOT NULL,
    public_jwk        BYTEA NOT NULL,
    private_encrypted BYTEA NOT NULL,
    created_at        BIGINT NOT NULL,
    activate_at       BIGINT NOT NULL
);

-- Failed logins per username or source address, shared by all instances.
CREATE TABLE login_throttles (
    key             TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at BIGINT NOT NULL
);
CREATE INDEX login_throttles_last_failure_at ON login_throttles (last_failure_at);
