-- The change feed, key lineage, and the live-key count per owner.

-- The key that created this key (NULL: made by a person or a trusted Worker). Cascading revocation
-- walks it downwards.
ALTER TABLE api_keys ADD COLUMN parent_id TEXT;
CREATE INDEX api_keys_parent ON api_keys (parent_id) WHERE parent_id IS NOT NULL;
-- Live keys per owner, for MAX_KEYS_PER_OWNER inside the conditional insert (a covering index scan).
CREATE INDEX api_keys_owner_live ON api_keys (owner_type, owner_id, expires_at) WHERE revoked_at IS NULL;

-- The change feed. D1 is one writer, so `seq` orders changes by commit: an isolate that has read up
-- to seq N has seen every change committed before the one numbered N+1, however its `revoked_at`
-- was stamped. `at` is D1's clock (used only for pruning), never a caller's.
CREATE TABLE key_changes (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  hash   TEXT NOT NULL,
  key_id TEXT NOT NULL,
  kind   TEXT NOT NULL CHECK (kind IN ('revoked', 'updated')),
  at     INTEGER NOT NULL
);

-- Every revocation appends to the feed in the statement that makes it: latchkey's own, a cascade's
-- rows, and an operator's UPDATE run by hand alike.
CREATE TRIGGER api_keys_feed_revoked AFTER UPDATE OF revoked_at ON api_keys
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  VALUES (NEW.hash, NEW.id, 'revoked', CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- Any change to what a verification decides on appends 'updated': isolates drop their copy and
-- re-read it. (A migration that adds such a column adds it here, by a trigger of its own.)
CREATE TRIGGER api_keys_feed_updated AFTER UPDATE OF hash, owner_type, owner_id, scopes, resources, expires_at ON api_keys
WHEN OLD.hash IS NOT NEW.hash OR OLD.owner_type IS NOT NEW.owner_type OR OLD.owner_id IS NOT NEW.owner_id
  OR OLD.scopes IS NOT NEW.scopes OR OLD.resources IS NOT NEW.resources OR OLD.expires_at IS NOT NEW.expires_at
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  VALUES (OLD.hash, NEW.id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- Retention: each appended row deletes up to 4 of the oldest rows older than a day, so the feed
-- stays about a day long at a bounded cost per write (4 rows read by primary key).
CREATE TRIGGER key_changes_prune AFTER INSERT ON key_changes
BEGIN
  DELETE FROM key_changes
  WHERE seq IN (SELECT seq FROM key_changes ORDER BY seq LIMIT 4) AND at < NEW.at - 86400000;
END;
