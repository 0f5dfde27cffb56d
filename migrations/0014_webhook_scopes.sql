-- Webhooks for root keys, and owners' credit warnings delivered as webhooks.

-- A root key's chain: the id of the root key its rotations started from (its own id when never rotated
-- from another). A root key's webhook endpoints belong to its chain, so the replacement made by a rotation
-- manages them, and they are delivered to while some key of the chain is live. Root keys made before this
-- migration each start their own chain.
ALTER TABLE root_keys ADD COLUMN chain_id TEXT;
UPDATE root_keys SET chain_id = id;
CREATE INDEX root_keys_chain ON root_keys (chain_id);

-- Endpoints gain a fourth kind of owner, `root` (owner_id: the root key chain that registered it), and
-- `owners`: for such an endpoint, the owner patterns (`user:*`, `workspace:acme`) whose keys' events it
-- receives, fixed at registration (NULL for the other kinds: their owner says whose). SQLite cannot
-- change a CHECK, so the table is made again; its outbox trigger reads it, so it is dropped first and
-- made again after.
DROP TRIGGER key_events_webhook_outbox;

CREATE TABLE webhook_endpoints_new (
  id                  TEXT PRIMARY KEY,
  owner_type          TEXT NOT NULL CHECK (owner_type IN ('user', 'workspace', 'deployment', 'root')),
  owner_id            TEXT NOT NULL,
  owners              TEXT CHECK ((owner_type = 'root') = (owners IS NOT NULL)),
  url                 TEXT NOT NULL,
  description         TEXT,
  events              TEXT,
  enabled             INTEGER NOT NULL DEFAULT 1,
  disabled_reason     TEXT,
  secret              TEXT NOT NULL,
  previous_secret     TEXT,
  previous_expires_at INTEGER,
  created_by          TEXT NOT NULL,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER
);
INSERT INTO webhook_endpoints_new (id, owner_type, owner_id, owners, url, description, events, enabled, disabled_reason,
  secret, previous_secret, previous_expires_at, created_by, created_at, updated_at)
SELECT id, owner_type, owner_id, NULL, url, description, events, enabled, disabled_reason,
  secret, previous_secret, previous_expires_at, created_by, created_at, updated_at
FROM webhook_endpoints;
DROP TABLE webhook_endpoints;
ALTER TABLE webhook_endpoints_new RENAME TO webhook_endpoints;
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_type, owner_id, created_at DESC);

-- As in 0009: every key event enters the outbox in the statement that writes it, while some endpoint is enabled.
CREATE TRIGGER key_events_webhook_outbox AFTER INSERT ON key_events
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1)
BEGIN
  INSERT INTO webhook_outbox (event_id) VALUES (NEW.id);
END;

-- The outbox also carries an owner's events (owner_events): `source` says which log `event_id` is in.
-- Only the owner events a webhook has a type for enter it: its credit warnings.
ALTER TABLE webhook_outbox ADD COLUMN source TEXT NOT NULL DEFAULT 'key' CHECK (source IN ('key', 'owner'));

CREATE TRIGGER owner_events_webhook_outbox AFTER INSERT ON owner_events
WHEN NEW.action IN ('credits_low', 'credits_exhausted')
  AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1)
BEGIN
  INSERT INTO webhook_outbox (event_id, source) VALUES (NEW.id, 'owner');
END;
