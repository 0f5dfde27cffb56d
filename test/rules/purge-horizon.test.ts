/**
 * What the hourly cron deletes and from when (src/keys/purge-horizon.ts): PURGE_AFTER_DAYS and
 * AUDIT_RETENTION_DAYS read as strings, the horizons, and which key rows are dead past the purge's
 * horizon (the rule `npm run move-bucket` drops a key by; test/storage/operations.test.ts checks it
 * against the purge's SQL).
 */
import { describe, expect, it } from "vitest";
import {
  DAY_MS,
  deadBefore,
  idempotencyBefore,
  purgeBefore,
  readAuditRetentionDays,
  readPurgeAfterDays,
  retentionBefore,
} from "../../src/keys/purge-horizon";

describe("PURGE_AFTER_DAYS", () => {
  it("is off when absent or empty, a whole number of days from 1 to 3650 otherwise", () => {
    for (const off of [undefined, "", "   "]) expect(readPurgeAfterDays(off)).toEqual({ days: null, error: null });
    expect(readPurgeAfterDays(" 30 ")).toEqual({ days: 30, error: null });
    expect(readPurgeAfterDays("1").days).toBe(1);
    expect(readPurgeAfterDays("3650").days).toBe(3650);
  });

  it("anything else is reported, and nothing is purged", () => {
    for (const bad of ["0", "-3", "3651", "1.5", "thirty", "1e9"]) {
      expect(readPurgeAfterDays(bad), bad).toEqual({
        days: null,
        error: "PURGE_AFTER_DAYS must be a whole number of days from 1 to 3650; keys are not purged",
      });
    }
  });
});

describe("AUDIT_RETENTION_DAYS", () => {
  it("is 90 when absent or empty, a whole number of days from 1 to 3650 otherwise; anything else is reported", () => {
    expect(readAuditRetentionDays(undefined)).toEqual({ days: 90, error: null });
    expect(readAuditRetentionDays("")).toEqual({ days: 90, error: null });
    expect(readAuditRetentionDays("7")).toEqual({ days: 7, error: null });
    for (const bad of ["0", "3651", "2.5", "long"]) {
      expect(readAuditRetentionDays(bad)).toEqual({
        days: 90,
        error: "AUDIT_RETENTION_DAYS must be a whole number from 1 to 3650; using 90",
      });
    }
  });
});

describe("the horizons", () => {
  const now = Date.UTC(2026, 5, 1);
  it("are whole days before now; an Idempotency-Key lasts one day", () => {
    expect(DAY_MS).toBe(86_400_000);
    expect(purgeBefore(now, 30)).toBe(now - 30 * 86_400_000);
    expect(retentionBefore(now, 90)).toBe(now - 90 * 86_400_000);
    expect(idempotencyBefore(now)).toBe(now - 86_400_000);
  });
});

describe("a key dead past the purge's horizon", () => {
  const before = 1_000_000;
  const key = (revoked_at: number | null, expires_at: number | null) => ({ revoked_at, expires_at });

  it("is one revoked or expired before the horizon", () => {
    expect(deadBefore(key(before - 1, null), before)).toBe(true);
    expect(deadBefore(key(null, before - 1), before)).toBe(true);
    expect(deadBefore(key(before - 1, before + 5), before)).toBe(true);
    expect(deadBefore(key(before + 5, before - 1), before)).toBe(true);
  });

  it("is never a key that is live, or died at the horizon or after it", () => {
    expect(deadBefore(key(null, null), before)).toBe(false);
    expect(deadBefore(key(null, before + 1), before)).toBe(false);
    expect(deadBefore(key(before, null), before)).toBe(false);
    expect(deadBefore(key(null, before), before)).toBe(false);
    expect(deadBefore(key(before + 1, before + 1), before)).toBe(false);
  });
});
