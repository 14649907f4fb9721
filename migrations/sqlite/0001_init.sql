-- 0001_init: Keyturn's initial schema (SQLite).
--
-- Every time is an INTEGER of unix MICROseconds, UTC, in both dialects. One
-- representation means exact comparisons (WHERE idle_expires_at > ?now) with
-- the same result on SQLite and PostgreSQL, microsecond precision everywhere,
-- and no driver-specific time formats: modernc SQLite would otherwise store
-- times as text in whatever format the driver chose. storage/sqlstore's row
-- types convert at the boundary. NULL only where "never" is a value
-- (rotated_at, revoked_at).
--
-- Tables are STRICT (SQLite >= 3.37) so that a value of the wrong type is an
-- error instead of being stored as text next to integers.

-- One row per login session; every refresh token of the session is
-- recomputed from (id, generation, salt, key_id) (DESIGN.md).
CREATE TABLE families (
    id                  TEXT PRIMARY KEY NOT NULL,
    client_id           TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    scope               TEXT NOT NULL,
    generation          INTEGER NOT NULL CHECK (generation >= 0),
    salt                BLOB NOT NULL,
    key_id              TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    last_used_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    rotated_at          INTEGER,
    revoked_at          INTEGER,
    revoke_reason       TEXT NOT NULL DEFAULT ''
) STRICT;
-- (user_id|client_id, created_at): filter and "newest first" of ListFamilies,
-- and the filter of RevokeFamilies / user disable and delete.
CREATE INDEX families_user_id_created_at ON families (user_id, created_at);
CREATE INDEX families_client_id_created_at ON families (client_id, created_at);
-- DeleteFamilies: absolute_expires_at < ? OR revoked_at < ?.
CREATE INDEX families_absolute_expires_at ON families (absolute_expires_at);
CREATE INDEX families_revoked_at ON families (revoked_at);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- Access tokens revoked by RFC 7009, kept until their exp.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

CREATE TABLE signing_keys (
    id                TEXT PRIMARY KEY NOT NULL,
    algorithm         TEXT NOT NULL,
    public_jwk        BLOB NOT NULL,
    private_encrypted BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    activate_at       INTEGER NOT NULL
) STRICT;

-- Failed logins per username or source address, shared by all instances.
CREATE TABLE login_throttles (
    key             TEXT PRIMARY KEY NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL
) STRICT;
CREATE INDEX login_throttles_last_failure_at ON login_throttles (last_failure_at);
