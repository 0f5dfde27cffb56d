-- Warnings latchkey writes to the audit log on its own (src/service/warnings.ts, src/store/warnings.ts):
-- `expiring` (EXPIRY_WARNING_DAYS before a key's expiry), `expired`, `credits_low` and
-- `credits_exhausted`. Each is written at most once: its ledger row here and its audit events go in one
-- batch, the events only if the ledger row was new, so a scan run twice (or concurrently) or an alarm
-- retried writes nothing twice.
--   key_id:  the key (expiry warnings) or the key chain, its usage id (credit warnings)
--   warning: `expiring:<threshold ms>`, `expired`, `credits_low` or `credits_exhausted`
--   mark:    what makes the warning one of its kind: the expires_at it is about (a new expiry re-arms the
--            expiry warnings), or the start of the credit period (a set, add or refill above the threshold)
--   until:   when the row can no longer stop a duplicate (its scan window or retry window has passed); the
--            cron deletes it after that, in bounded batches
--   batch:   the write that made the row (a random id): that write's audit events are made from its rows
CREATE TABLE key_warnings (
  key_id  TEXT NOT NULL,
  warning TEXT NOT NULL,
  mark    INTEGER NOT NULL,
  at      INTEGER NOT NULL,
  until   INTEGER NOT NULL,
  batch   TEXT NOT NULL,
  PRIMARY KEY (key_id, warning, mark)
) WITHOUT ROWID;

CREATE INDEX key_warnings_until ON key_warnings (until);
CREATE INDEX key_warnings_batch ON key_warnings (batch);
