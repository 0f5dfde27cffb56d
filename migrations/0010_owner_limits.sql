-- Per-customer limits: rate limits and credits shared by every key of one owner, counted on the
-- owner's own Durable Object (named `owner:<type>:<id>`) as well as each key's own counters.
-- `rules` has the shape of api_keys.limits ({"ratelimits":[...],"credits":{...}|null}); an owner without
-- limits has no row, so its keys' lookups find nothing here and carry nothing more in any cache.
CREATE TABLE owner_limits (
  owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'workspace')),
  owner_id   TEXT NOT NULL,
  rules      TEXT NOT NULL,
  changed_at INTEGER NOT NULL,           -- epoch ms of the last change (a write is conditional on it)
  PRIMARY KEY (owner_type, owner_id)
) WITHOUT ROWID;

-- Every cached key record carries its owner's limits (store/d1.ts reads them with the key), so a
-- change of them is a change of every unrevoked key of the owner: appended to the change feed in the
-- statement that makes it, like the triggers of migrations 0002, 0005 and 0006, and every isolate
-- drops its copies within the change bound.
CREATE TRIGGER owner_limits_feed_insert AFTER INSERT ON owner_limits
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  SELECT hash, id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM api_keys
  WHERE owner_type = NEW.owner_type AND owner_id = NEW.owner_id AND revoked_at IS NULL;
END;

CREATE TRIGGER owner_limits_feed_update AFTER UPDATE OF rules ON owner_limits
WHEN OLD.rules IS NOT NEW.rules
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  SELECT hash, id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM api_keys
  WHERE owner_type = NEW.owner_type AND owner_id = NEW.owner_id AND revoked_at IS NULL;
END;

CREATE TRIGGER owner_limits_feed_delete AFTER DELETE ON owner_limits
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  SELECT hash, id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM api_keys
  WHERE owner_type = OLD.owner_type AND owner_id = OLD.owner_id AND revoked_at IS NULL;
END;

-- The audit log of owners' limits (key_events is per key): one row per change, written in the same
-- D1 batch as the change. Never a key, a hash or a JWT.
CREATE TABLE owner_events (
  id         TEXT PRIMARY KEY NOT NULL,   -- UUID v4
  owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'workspace')),
  owner_id   TEXT NOT NULL,
  action     TEXT NOT NULL,               -- limits_updated | credits_updated
  actor      TEXT NOT NULL,               -- user:<sub> | service | root:<id>
  at         INTEGER NOT NULL,
  changes    TEXT NOT NULL,               -- JSON object: field -> { "old": ..., "new": ... }
  ip         TEXT,
  user_agent TEXT
);
CREATE INDEX owner_events_owner_at ON owner_events (owner_type, owner_id, at DESC, id DESC);
