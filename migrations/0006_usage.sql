-- Usage control. `limits`: the key's rate limits and credits as JSON
-- {"ratelimits":[{name,limit,duration_ms}],"credits":{remaining,refill,added?,removed?,set?}|null}; NULL: no
-- limits (its verification never reaches a counter). `usage_id`: the key chain whose Durable Object
-- counters the key uses; NULL: the key's own id. A rotated key gets its predecessor's (and a key made by
-- a key with limits its maker's), so it never has a second balance. Keys of one chain hold the same
-- limits: a change of one changes all (store/d1.ts), in one batch.
ALTER TABLE api_keys ADD COLUMN limits TEXT;
ALTER TABLE api_keys ADD COLUMN usage_id TEXT;

-- A chain's keys, for changing their limits together.
CREATE INDEX api_keys_usage_id ON api_keys (usage_id) WHERE usage_id IS NOT NULL;

-- Limits decide verifications too (and credit operations are recorded in them): like 0002's and 0005's
-- triggers, a change appends 'updated' to the change feed in the statement that makes it, so every
-- isolate re-reads the key within the change bound.
CREATE TRIGGER api_keys_feed_limits AFTER UPDATE OF limits, usage_id ON api_keys
WHEN OLD.limits IS NOT NEW.limits OR OLD.usage_id IS NOT NEW.usage_id
BEGIN
  INSERT INTO key_changes (hash, key_id, kind, at)
  VALUES (OLD.hash, NEW.id, 'updated', CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- Verifications per key, hour (epoch ms of the UTC hour) and outcome (a verify code), gathered in each
-- isolate and added here in batches (src/service/usage.ts), never one write per request.
CREATE TABLE key_usage (
  key_id  TEXT NOT NULL,
  hour    INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  count   INTEGER NOT NULL,
  PRIMARY KEY (key_id, hour, outcome)
) WITHOUT ROWID;
