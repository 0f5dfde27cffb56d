/**
 * What an operator needs besides the key lifecycle: readiness (is every dependency reachable, and is
 * D1's schema the one this build needs?), the purge of long-dead keys and the audit log's retention
 * (the Cron Trigger). Kept
 * apart from Keys: none acts for a caller, and none is on any request's path.
 */
import { idempotencyBefore, purgeBefore, retentionBefore } from "../keys/purge-horizon";
import { describeError, log } from "../log";
import { LATEST_MIGRATION } from "../store/schema";
import type { KeyStore, StoreMaintenance } from "../store/store";
import { StorageMisconfiguredError } from "./errors";

export { IDEMPOTENCY_TTL_MS } from "../keys/purge-horizon";
/** Keys deleted per D1 statement, and the most statements one purge runs (a bounded cron). */
export const PURGE_BATCH = 500;
export const PURGE_MAX_BATCHES = 20;

/**
 * A dependency's state, in words safe to show anyone (/readyz needs no credentials): `behind` when D1's
 * schema is not this build's (which migrations are missing goes to the log, not to the caller).
 */
export type CheckResult = "ok" | "behind" | "unreachable";

export interface Readiness {
  readonly ready: boolean;
  /** Each dependency's state; the details (which migration, which error) go to the log. */
  readonly checks: Record<string, CheckResult>;
}

export interface ReadinessProbes {
  readonly store: StoreMaintenance;
  /** Resolves when the cache answers. */
  readonly cache: () => Promise<void>;
}

export async function checkReadiness({ store, cache }: ReadinessProbes): Promise<Readiness> {
  const probes: Record<string, () => Promise<void>> = {
    d1: () => store.checkSchema(LATEST_MIGRATION),
    kv: cache,
  };
  const checks: Record<string, CheckResult> = {};
  await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      try {
        await probe();
        checks[name] = "ok";
      } catch (error) {
        const misconfigured = error instanceof StorageMisconfiguredError;
        checks[name] = misconfigured ? "behind" : "unreachable";
        log("error", "not_ready", {
          dependency: name,
          error: describeError(error),
          cause: describeError(error instanceof Error ? error.cause : undefined),
        });
      }
    }),
  );
  return { ready: Object.values(checks).every((check) => check === "ok"), checks };
}

/**
 * Deletes keys revoked or expired more than `afterDays` days before `now`, in batches of PURGE_BATCH,
 * at most PURGE_MAX_BATCHES per run (the next run continues), and forgets expired Idempotency-Keys.
 * The number of keys deleted.
 */
export async function purgeDeadKeys(store: StoreMaintenance, afterDays: number, now: number): Promise<number> {
  const before = purgeBefore(now, afterDays);
  let purged = 0;
  for (let batch = 0; batch < PURGE_MAX_BATCHES; batch++) {
    const deleted = await store.purge(before, idempotencyBefore(now), PURGE_BATCH);
    purged += deleted;
    if (deleted < PURGE_BATCH) break;
  }
  log("info", "purge_done", { purged, before: new Date(before).toISOString() });
  return purged;
}

/** Retention purges delete this many events per statement, at most EVENT_PURGE_BATCHES statements per run. */
const EVENT_PURGE_BATCH = 1000;
const EVENT_PURGE_BATCHES = 50;

/** Retention (a scheduled task): deletes events older than `retentionDays`, in bounded batches; the number deleted. */
export async function purgeAuditEvents(
  store: Pick<KeyStore, "purgeEvents">,
  retentionDays: number,
  now: number,
): Promise<number> {
  const before = retentionBefore(now, retentionDays);
  let deleted = 0;
  for (let batch = 0; batch < EVENT_PURGE_BATCHES; batch++) {
    const count = await store.purgeEvents(before, EVENT_PURGE_BATCH);
    deleted += count;
    if (count < EVENT_PURGE_BATCH) break;
  }
  return deleted;
}
