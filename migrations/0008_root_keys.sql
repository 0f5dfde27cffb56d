-- Root keys: credentials of a backend that provisions its customers' keys (operators make them at
-- /v1/root-keys). Their own table, apart from api_keys, so a root key can never verify as a product
-- key, appear in a customer's list, or join a key's lineage. The key itself is never stored: `hash` is
-- the SHA-256 of the whole key. Times are epoch milliseconds (UTC). A root key is read from here on
-- every request that presents it (no cache), so its revocation holds from the next request on.
CREATE TABLE root_keys (
  id           TEXT PRIMARY KEY NOT NULL,   -- UUID v4
  hash         TEXT NOT NULL,               -- hex SHA-256 of the key
  start        TEXT NOT NULL,               -- prefix and first characters, for display
  name         TEXT NOT NULL,
  owners       TEXT NOT NULL,               -- JSON array of owner patterns: user:*, workspace:acme
  scopes       TEXT NOT NULL,               -- JSON array: keys:read, keys:write
  allowed_ips  TEXT,                        -- JSON array of addresses and CIDR ranges; NULL = any
  created_by   TEXT NOT NULL,               -- user:<sub> of the operator
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER,
  revoked_at   INTEGER,
  revoked_by   TEXT,                        -- user:<sub> of the operator who revoked it
  rotated_from TEXT,                        -- the root key this one replaced by rotation
  last_used_at INTEGER                      -- written at most once a minute
);

CREATE UNIQUE INDEX root_keys_hash ON root_keys (hash);
-- Listing, newest first, by keyset pagination.
CREATE INDEX root_keys_created ON root_keys (created_at DESC, id DESC);
