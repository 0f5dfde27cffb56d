/**
 * What the hourly cron deletes, and from when: keys revoked or expired more than PURGE_AFTER_DAYS ago
 * (with their usage counts) and Idempotency-Key records older than a day (the purge, off without
 * PURGE_AFTER_DAYS), audit events older than AUDIT_RETENTION_DAYS (the retention). The one statement of
 * these settings and horizons, for the Worker (config.ts reads the settings, service/operations.ts runs
 * the purges, store/d1-maintenance.ts and store/d1-events.ts hold the SQL) and for `npm run move-bucket`
 * (scripts/move-bucket.mjs), which judges by the same rule whether a row one database lacks is one the
 * cron deleted. Node runs that script on this file as it is (it strips the types), so this file imports
 * nothing and uses only TypeScript that erases. No storage, no clock of its own.
 */

export const DAY_MS = 86_400_000;
/** How long an Idempotency-Key is remembered (service/idempotency.ts claims it; the purge forgets it). */
export const IDEMPOTENCY_TTL_MS = DAY_MS;
export const DEFAULT_AUDIT_RETENTION_DAYS = 90;
const MAX_DAYS = 3650;

/** A setting in whole days: its value, and what is wrong with the string it was read from (null: nothing). */
export interface DaysSetting<T> {
  readonly days: T;
  readonly error: string | null;
}

const wholeDays = (raw: string): number | null => {
  const days = Number(raw);
  return Number.isInteger(days) && days >= 1 && days <= MAX_DAYS ? days : null;
};

/** PURGE_AFTER_DAYS: 1 to 3650; absent or empty: null (keys are never purged); anything else is reported, and null. */
export function readPurgeAfterDays(value: string | undefined): DaysSetting<number | null> {
  const raw = value?.trim();
  if (!raw) return { days: null, error: null };
  const days = wholeDays(raw);
  return days === null
    ? { days, error: "PURGE_AFTER_DAYS must be a whole number of days from 1 to 3650; keys are not purged" }
    : { days, error: null };
}

/** AUDIT_RETENTION_DAYS: 1 to 3650; absent or empty: 90; anything else is reported, and 90. */
export function readAuditRetentionDays(value: string | undefined): DaysSetting<number> {
  const raw = value?.trim();
  if (!raw) return { days: DEFAULT_AUDIT_RETENTION_DAYS, error: null };
  const days = wholeDays(raw);
  return days === null
    ? {
        days: DEFAULT_AUDIT_RETENTION_DAYS,
        error: `AUDIT_RETENTION_DAYS must be a whole number from 1 to 3650; using ${DEFAULT_AUDIT_RETENTION_DAYS}`,
      }
    : { days, error: null };
}

/** The purge at `now` deletes keys revoked or expired before this time. */
export const purgeBefore = (now: number, purgeAfterDays: number): number => now - purgeAfterDays * DAY_MS;

/** The purge at `now` forgets Idempotency-Key records made before this time. */
export const idempotencyBefore = (now: number): number => now - IDEMPOTENCY_TTL_MS;

/** The retention at `now` deletes audit events before this time. */
export const retentionBefore = (now: number, retentionDays: number): number => now - retentionDays * DAY_MS;

/** The columns of a key row the purge decides by. */
export interface KeyDeaths {
  readonly revoked_at: number | null;
  readonly expires_at: number | null;
}

/**
 * Whether the purge with horizon `before` deletes this key row: the JavaScript of its SQL,
 * `revoked_at < before OR expires_at < before` (store/d1-maintenance.ts), where NULL (never revoked,
 * never expires) compares as nothing.
 */
export function deadBefore(row: KeyDeaths, before: number): boolean {
  return (row.revoked_at !== null && row.revoked_at < before) || (row.expires_at !== null && row.expires_at < before);
}
