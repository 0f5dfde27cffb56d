-- Webhooks: the endpoints people register, the outbox the dispatcher reads, and each delivery's log.

-- One registered endpoint. `owner_type` / `owner_id`: whose keys' events it receives (`user` + subject,
-- `workspace` + workspace id, or `deployment` + '*' for an operator's endpoint that receives every
-- owner's). `secret` is the signing secret encrypted with WEBHOOK_SECRET_KEY (AES-256-GCM, never the
-- plaintext); `previous_secret` keeps signing until `previous_expires_at` after a rotation.
CREATE TABLE webhook_endpoints (
  id                  TEXT PRIMARY KEY,
  owner_type          TEXT NOT NULL CHECK (owner_type IN ('user', 'workspace', 'deployment')),
  owner_id            TEXT NOT NULL,
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
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_type, owner_id, created_at DESC);

-- The outbox: every audit event, numbered in commit order (D1 is one writer), written by a trigger in
-- the statement that writes the event, so an event is here exactly when its change committed. Only
-- while some endpoint is enabled: a deployment without webhooks writes nothing more.
CREATE TABLE webhook_outbox (
  seq      INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL
);
CREATE TRIGGER key_events_webhook_outbox AFTER INSERT ON key_events
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1)
BEGIN
  INSERT INTO webhook_outbox (event_id) VALUES (NEW.id);
END;

-- The dispatcher's position in the outbox: every event up to `seq` has its deliveries recorded.
CREATE TABLE webhook_cursor (
  id  INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, seq) VALUES (1, 0);

-- One row per (event, endpoint): `id` is the webhook-id the receiver sees, derived from both, so a
-- re-dispatch of the same event never makes a second row. `payload` is the body exactly as signed.
-- `status`: pending, delivered or failed (retries exhausted, 410, or the endpoint disabled or deleted).
CREATE TABLE webhook_deliveries (
  id              TEXT PRIMARY KEY,
  endpoint_id     TEXT NOT NULL,
  event_id        TEXT NOT NULL,
  type            TEXT NOT NULL,
  payload         TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_status     INTEGER,
  last_error      TEXT,
  next_attempt_at INTEGER,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
