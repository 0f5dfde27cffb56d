-- Imported keys in more formats (src/keys/legacy.ts): unprefixed tokens (hex32, hex64, base64url43),
-- HMAC-SHA256 digests under a pepper, and bcrypt hashes found by a lookup id.
--
-- 0003's CHECK allows `format` only 'sanctum' and 'opaque', and SQLite cannot widen a CHECK without
-- rebuilding the table: the finer format lives in `legacy_format`, and `format` says 'opaque' for those
-- keys (a reader of `format` alone still sees an imported key). store/legacy-columns.ts maps the two.
ALTER TABLE api_keys ADD COLUMN legacy_format TEXT
  CHECK (legacy_format IN ('hex32', 'hex64', 'base64url43', 'hmac-sha256', 'bcrypt'));

-- A bcrypt key (whose `hash` is the SHA-256 of its lookup id): the bcrypt hash of its secret until its
-- first verification, then the SHA-256 of the whole token (the upgrade; an 'upgraded' audit event).
ALTER TABLE api_keys ADD COLUMN legacy_hash TEXT;

-- The check decides verifications: like 0002's, 0005's and 0006's triggers, a change appends 'updated'
-- to the change feed, so every isolate drops its copy holding the bcrypt hash.
CREATE TRIGGER api_keys_feed_legacy_hash AFTER UPDATE OF legacy_hash ON api_keys
WHEN OLD.legacy_hash IS NOT NEW.legacy_hash
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  VALUES (OLD.hash, NEW.id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
