-- One row per API key. The key itself is never stored: `hash` is the SHA-256 of the whole key.
-- Times are epoch milliseconds (UTC).
CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY NOT NULL,   -- UUID v4
  hash         TEXT NOT NULL,               -- hex SHA-256 of the key
  start        TEXT NOT NULL,               -- prefix and first characters, for display
  name         TEXT NOT NULL,
  owner_type   TEXT NOT NULL CHECK (owner_type IN ('user', 'workspace')),
  owner_id     TEXT NOT NULL,
  scopes       TEXT NOT NULL,               -- JSON array of scope strings
  resources    TEXT,                        -- JSON array of resource ids; NULL = every resource
  created_by   TEXT NOT NULL,               -- user:<sub> | key:<id> | service
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER,
  revoked_at   INTEGER,
  last_used_at INTEGER,
  metadata     TEXT                         -- JSON object, at most 2 KB
);

-- The hot path: find a key by its hash.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
-- Listing an owner's keys, newest first, by keyset pagination.
CREATE INDEX api_keys_owner_created ON api_keys (owner_type, owner_id, created_at DESC, id DESC);
-- Revocation sync: every isolate asks for the revocations after its last look, paging on (revoked_at, hash).
CREATE INDEX api_keys_revoked ON api_keys (revoked_at, hash) WHERE revoked_at IS NOT NULL;
