-- 0002_key_revocation: emergency revocation of a signing key (`keyturn keys
-- revoke`). A revoked key is neither published nor used, on any instance;
-- its private half is erased when it is revoked. NULL: not revoked.
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
