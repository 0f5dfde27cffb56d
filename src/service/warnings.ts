/**
 * The expiry scan (a task of the Cron Trigger): writes each key's `expiring` warnings
 * (EXPIRY_WARNING_DAYS before its expiry) and its `expired` warning to the audit log, each once per
 * expiry (store/warnings.ts), and forgets the ledger rows that can no longer stop a duplicate. Which
 * warning is due when is the pure rule of keys/warnings.ts.
 *
 * Bounded: each warning's window is written in batches of EXPIRY_BATCH keys, at most
 * EXPIRY_MAX_BATCHES per run (the next run, an hour later, goes on where this one stopped). Safe to run
 * twice at once: a key's warning is one ledger row, so the second run writes nothing for it.
 */
import { expiryWindows } from "../keys/warnings";
import { log } from "../log";
import type { WarningStore } from "../store/warnings";

/** Keys warned per D1 batch, and the most batches per warning per run. */
export const EXPIRY_BATCH = 200;
export const EXPIRY_MAX_BATCHES = 5;
/** Ledger rows deleted per run (a bounded cron). */
export const WARNING_PRUNE_BATCH = 500;

/** Writes the expiry warnings due at `now` for thresholds `thresholdsMs` (largest first): how many. */
export async function scanExpiry(store: WarningStore, thresholdsMs: readonly number[], now: number): Promise<number> {
  let written = 0;
  for (const window of expiryWindows(thresholdsMs, now)) {
    for (let batch = 0; batch < EXPIRY_MAX_BATCHES; batch++) {
      const count = await store.expiryWarnings(window, now, EXPIRY_BATCH);
      written += count;
      if (count < EXPIRY_BATCH) break;
    }
  }
  const pruned = await store.pruneWarnings(now, WARNING_PRUNE_BATCH);
  log("info", "expiry_warnings_done", { written, pruned });
  return written;
}
