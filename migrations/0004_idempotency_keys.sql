-- Idempotency-Key records: which key a caller's request created, so a retry never creates a second
-- one (POST /v1/keys; rotate will use the same table). Written in the same D1 batch as the key, so
-- the primary key makes two concurrent retries unable to both create. Kept 24 hours; purged by cron.
CREATE TABLE idempotency_keys (
  caller       TEXT NOT NULL,      -- user:<sub> | key:<id> | service:<owner_type>:<owner_id>
  key_hash     TEXT NOT NULL,      -- hex SHA-256 of the Idempotency-Key header
  request_hash TEXT NOT NULL,      -- hex SHA-256 of the operation and its parsed input
  key_id       TEXT NOT NULL,      -- the API key the request created
  created_at   INTEGER NOT NULL,   -- epoch milliseconds
  PRIMARY KEY (caller, key_hash)
) WITHOUT ROWID;

-- The purge of expired records.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- The purge cron (PURGE_AFTER_DAYS): finds expired keys without scanning the table.
CREATE INDEX api_keys_expires ON api_keys (expires_at) WHERE expires_at IS NOT NULL;
