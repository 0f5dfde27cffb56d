// What the Worker's hourly cron may have deleted from a database while `npm run move-bucket` moves a
// bucket (scripts/move-bucket.mjs says how the move uses it): the cron's settings as wrangler.toml gives
// them to the Worker, its horizons at a moment, and which rows of the bucket's tables those let it delete.
// The rule itself is the Worker's (src/keys/purge-horizon.ts, which Node imports as it is).
import {
  deadBefore,
  idempotencyBefore,
  purgeBefore,
  readAuditRetentionDays,
  readPurgeAfterDays,
  retentionBefore,
} from "../src/keys/purge-horizon.ts";
import { tomlVars } from "./dev-config.mjs";

/**
 * What the Worker's cron deletes, as the move needs it: PURGE_AFTER_DAYS (`opts.purgeAfterDays`, from
 * --purge-after-days, else the environment's var; null: no purge) and AUDIT_RETENTION_DAYS, read as
 * src/config.ts reads them; `errors`: what the Worker would report of them.
 */
export function cronSettings(toml, opts) {
  const vars = tomlVars(toml, opts.env);
  const purge =
    opts.purgeAfterDays !== undefined
      ? { days: opts.purgeAfterDays, error: null }
      : readPurgeAfterDays(vars.PURGE_AFTER_DAYS);
  const retention = readAuditRetentionDays(vars.AUDIT_RETENTION_DAYS);
  const errors = [purge.error, retention.error].filter((error) => error !== null);
  return { purgeAfterDays: purge.days, auditRetentionDays: retention.days, errors };
}

/** No purge, the default retention: what `copy` and `drain` assume when not told. */
export const NO_PURGE = { purgeAfterDays: null, auditRetentionDays: readAuditRetentionDays(undefined).days };

/** The horizons of the cron at `now` (keys and Idempotency-Key records: null without the purge). */
export function horizonsAt(settings, now) {
  const days = settings.purgeAfterDays;
  return {
    now,
    days,
    keys: days === null ? null : purgeBefore(now, days),
    idempotency: days === null ? null : idempotencyBefore(now),
    events: retentionBefore(now, settings.auditRetentionDays),
  };
}

/** Ids of the key rows in `rows` that `others` lacks and the purge deletes (dead past its horizon). */
export function deadMissing(rows, others, horizons) {
  if (horizons.keys === null) return [];
  const present = new Set(others.map((row) => row.id));
  return rows.filter((row) => !present.has(row.id) && deadBefore(row, horizons.keys)).map((row) => row.id);
}

/** Whether `row` of `table` belongs to one of the keys `dropped` (the key row itself, or found through it). */
export function ofDropped(table, row, dropped) {
  if (table === "api_keys") return dropped.has(row.id);
  if (table === "key_usage" || table === "key_warnings" || table === "idempotency_keys") return dropped.has(row.key_id);
  return false;
}

/**
 * Whether the cron may have deleted `row` of `table` from a database by the time of `horizons`: the
 * rows of a key it purged (`gone`: dead past the purge's horizon), expired Idempotency-Key records,
 * events past retention, warnings past their `until`. Never owner_limits nor owner_events.
 */
export function cronMayDelete(table, row, horizons, gone) {
  if (ofDropped(table, row, gone)) return true;
  if (table === "idempotency_keys") return horizons.idempotency !== null && row.created_at < horizons.idempotency;
  if (table === "key_events") return row.at < horizons.events;
  if (table === "key_warnings") return row.until < horizons.now;
  return false;
}
