-- Key lifecycle: disable/enable, updates, rotation, IP allow-lists, and the audit log.
-- Existing rows keep working: they are enabled, never updated, open to every address, not rotated.
ALTER TABLE api_keys ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1));
ALTER TABLE api_keys ADD COLUMN updated_at INTEGER;   -- the last change of any setting, revocation included; NULL: never
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;     -- JSON array of addresses and CIDR ranges; NULL = any address
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT;    -- the id of the key this one replaced

-- Disabling, enabling and allow-list changes decide verifications too: like 0002's triggers, each
-- appends 'updated' to the change feed in the statement that makes it, so isolates re-read the key.
-- (Rotation's change to the old key's expiry is covered by 0002's api_keys_feed_updated.)
CREATE TRIGGER api_keys_feed_lifecycle AFTER UPDATE OF enabled, allowed_ips ON api_keys
WHEN OLD.enabled IS NOT NEW.enabled OR OLD.allowed_ips IS NOT NEW.allowed_ips
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  VALUES (OLD.hash, NEW.id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- The audit log: one row per change of a key, written in the same D1 batch as the change itself.
-- Never holds a key, a hash or a JWT. `owner_*` is the key's owner, so an owner's log is one index range.
CREATE TABLE key_events (
  id         TEXT PRIMARY KEY NOT NULL,   -- UUID v4
  key_id     TEXT NOT NULL,
  owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'workspace')),
  owner_id   TEXT NOT NULL,
  action     TEXT NOT NULL,               -- created | imported | updated | disabled | enabled | rotated | revoked
  actor      TEXT NOT NULL,               -- user:<sub> | key:<id> | service
  at         INTEGER NOT NULL,            -- epoch milliseconds
  changes    TEXT NOT NULL,               -- JSON object: field -> { "old": ..., "new": ... }
  ip         TEXT,
  user_agent TEXT
);

-- An owner's events and one key's events, newest first, by keyset pagination; retention by age.
CREATE INDEX key_events_owner_at ON key_events (owner_type, owner_id, at DESC, id DESC);
CREATE INDEX key_events_key_at ON key_events (key_id, at DESC, id DESC);
CREATE INDEX key_events_at ON key_events (at);
