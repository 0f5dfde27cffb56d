-- Webhooks with sharding by owner (docs/scaling.md, D1_SHARDS > 1). Endpoints and deliveries live in the
-- first database (DB); every database keeps its own outbox and cursor, filled by its own triggers. A
-- database other than the first has no endpoints of its own, so its triggers also fire while it holds
-- the relay row: written by the service (to every database but the first) before an endpoint is
-- registered or enabled, and again by the cron while one is. With one database it is never written, and
-- the triggers behave exactly as in 0014.
CREATE TABLE webhook_relay (
  id INTEGER PRIMARY KEY CHECK (id = 1)
);

DROP TRIGGER key_events_webhook_outbox;
CREATE TRIGGER key_events_webhook_outbox AFTER INSERT ON key_events
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1) OR EXISTS (SELECT 1 FROM webhook_relay)
BEGIN
  INSERT INTO webhook_outbox (event_id) VALUES (NEW.id);
END;

DROP TRIGGER owner_events_webhook_outbox;
CREATE TRIGGER owner_events_webhook_outbox AFTER INSERT ON owner_events
WHEN NEW.action IN ('credits_low', 'credits_exhausted')
  AND (EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1) OR EXISTS (SELECT 1 FROM webhook_relay))
BEGIN
  INSERT INTO webhook_outbox (event_id, source) VALUES (NEW.id, 'owner');
END;
