-- 0005_authorization_code: the authorization code flow (RFC 6749 §4.1):
-- which grant started a session and when its user signed in, the codes,
-- the browser login sessions of the login page, and remembered consent.
-- Times are INTEGER unix microseconds, as in 0001; tables are STRICT.

-- grant_type has a constant default and auth_time is nullable, so that an
-- instance still running the previous release (rolling upgrade), whose
-- inserts name neither column, keeps creating password sessions. auth_time
-- NULL (a session created before this migration, or by such an instance)
-- reads as created_at: a password login signs in when it starts the
-- session.
ALTER TABLE families ADD COLUMN grant_type TEXT NOT NULL DEFAULT 'password';
ALTER TABLE families ADD COLUMN auth_time INTEGER;

-- Authorization codes (RFC 6749 §4.1.2), stored by their SHA-256 only.
-- used_at/family_id are set by the one conditional UPDATE that redeems a
-- code; a used code is kept until swept, so that a replay names the
-- session its first redemption started (§4.1.2: revoke it). resources is
-- a JSON array of strings (RFC 8707 resource parameters).
CREATE TABLE auth_codes (
    hash               BLOB PRIMARY KEY NOT NULL,
    client_id          TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    redirect_uri       TEXT NOT NULL,
    code_challenge     TEXT NOT NULL,
    scope              TEXT NOT NULL,
    resources          TEXT NOT NULL,
    nonce              TEXT NOT NULL,
    browser_session_id TEXT NOT NULL,
    auth_time          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    used_at            INTEGER,
    family_id          TEXT NOT NULL DEFAULT ''
) STRICT;
-- DeleteCodes: expires_at < $1.
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);
-- A user disabled, deleted or re-passworded: their unused codes go.
CREATE INDEX auth_codes_user_id ON auth_codes (user_id);

-- Browser login sessions: id is the SHA-256 of the cookie (base64url), so
-- the table holds nothing that opens a session.
CREATE TABLE browser_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
-- A user disabled, deleted or re-passworded: their sessions are revoked.
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);
-- DeleteBrowserSessions: expires_at < $1 OR revoked_at < $1.
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);
CREATE INDEX browser_sessions_revoked_at ON browser_sessions (revoked_at);

-- Consent (RFC 6749 §10.2): one row per user, client and scope, plus a
-- marker row with scope '' for "consented to the client". A grant only
-- inserts rows (ON CONFLICT: newer granted_at), so concurrent grants
-- union without a read-modify-write.
CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
) STRICT;
