-- Login throttling that counts exactly: a throttle row also holds the
-- attempts in flight (reserved before the password hash runs, resolved
-- after it) and when the oldest of them began, so a reservation orphaned
-- by a crash can be expired.
ALTER TABLE login_throttles ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_throttles ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0;

-- Addresses (keyed like the throttle's address counter) from which a user
-- logged in successfully; the per-username bar does not hold them back.
CREATE TABLE known_addresses (
    user_key     TEXT NOT NULL,
    addr         TEXT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_key, addr)
);
CREATE INDEX known_addresses_last_seen_at ON known_addresses (last_seen_at);
