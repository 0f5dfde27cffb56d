-- Usage control (issue 13). `limits`: the key's rate limits and credits as JSON
-- {"ratelimits":[{name,limit,duration_ms}],"credits":{remaining,refill}|null}; NULL: no limits (its
-- verification never reaches a counter). `usage_id`: the key chain whose Durable Object counters the
-- key uses; NULL: the key's own id. A rotated key gets its predecessor's, so it never has a second balance.
ALTER TABLE api_keys ADD COLUMN limits TEXT;
ALTER TABLE api_keys ADD COLUMN usage_id TEXT;

-- Verifications per key, hour (epoch ms of the UTC hour) and outcome (a verify code), gathered in each
-- isolate and added here in batches (src/service/usage.ts), never one write per request.
CREATE TABLE key_usage (
  key_id  TEXT NOT NULL,
  hour    INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  count   INTEGER NOT NULL,
  PRIMARY KEY (key_id, hour, outcome)
) WITHOUT ROWID;
