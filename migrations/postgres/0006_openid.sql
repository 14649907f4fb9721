-- 0006_openid: OpenID Connect (Core 1.0). Users gain the standard profile
-- claims an admin sets with the CLI (Core §5.1: name, email,
-- email_verified; preferred_username is the username). A session started
-- by an authorization code remembers the browser login session it was
-- issued in, so that RP-initiated logout ends exactly the sessions that
-- browser started for the client. Constant defaults: no table rewrite, and
-- browser_session_id is not indexed on families (rotation stays HOT, 0004);
-- logout finds its sessions by user and client, then filters.
ALTER TABLE users ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE families ADD COLUMN browser_session_id TEXT NOT NULL DEFAULT '';
