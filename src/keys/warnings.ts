/**
 * Warnings as pure rules: when a key's expiry warnings are due (EXPIRY_WARNING_DAYS, the expiry scan
 * of service/warnings.ts) and when a key chain's credits are low or exhausted (the counter,
 * store/counter.ts, through applyUsage in limit-arithmetic.ts). No storage, no clock of its own.
 *
 * Expiry: each threshold owns a band of time before the expiry, from the next smaller threshold (or
 * the expiry itself) up to it; a scan at `now` warns the keys whose expiry lies in a band, with that
 * band's threshold. So a key expiring in 12 hours gets the 1-day warning only, never a 7-day one
 * late, and a key whose expiry is 3 days away gets the 7-day warning, then the 1-day one. `expired`
 * is due for keys whose expiry passed within EXPIRED_LOOKBACK_MS (so a missed cron run loses nothing,
 * and a key long expired is never announced again).
 *
 * Credits: `credits_low` is due the first time, in a period, that a counter call finds the balance
 * below the low threshold (the key's `low_threshold`, or 10 % of its last set or refill amount);
 * `credits_exhausted` the first time it finds 0. A period starts when a call finds the balance at or
 * above the threshold again (after a set, an add or a refill) with a warning given: both re-arm.
 */

export const DAY_MS = 86_400_000;
export const DEFAULT_EXPIRY_WARNING_DAYS = [7, 1] as const;
export const MAX_EXPIRY_WARNINGS = 10;
export const MAX_EXPIRY_WARNING_DAYS = 365;
/** How long after a key's expiry the scan still writes its `expired` warning (a missed run loses nothing). */
export const EXPIRED_LOOKBACK_MS = DAY_MS;

/**
 * EXPIRY_WARNING_DAYS: a comma list of positive numbers of days (fractions allowed, at most
 * MAX_EXPIRY_WARNING_DAYS, at most MAX_EXPIRY_WARNINGS of them), as milliseconds, largest first.
 * Absent: the default; empty: none (keys still get `expired`). Anything else: the default and an error.
 */
export function parseExpiryWarningDays(raw: string | undefined): { thresholdsMs: number[]; error: string | null } {
  const fallback = DEFAULT_EXPIRY_WARNING_DAYS.map((days) => days * DAY_MS);
  if (raw === undefined) return { thresholdsMs: fallback, error: null };
  const items = raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  const days = items.map(Number);
  const valid =
    items.length <= MAX_EXPIRY_WARNINGS &&
    days.every((d) => Number.isFinite(d) && d > 0 && d <= MAX_EXPIRY_WARNING_DAYS && Math.round(d * DAY_MS) > 0);
  if (!valid) {
    return {
      thresholdsMs: fallback,
      error: `EXPIRY_WARNING_DAYS must be a comma list of at most ${MAX_EXPIRY_WARNINGS} numbers of days from 0 to ${MAX_EXPIRY_WARNING_DAYS}; using ${DEFAULT_EXPIRY_WARNING_DAYS.join(",")}`,
    };
  }
  const ms = [...new Set(days.map((d) => Math.round(d * DAY_MS)))].sort((a, b) => b - a);
  return { thresholdsMs: ms, error: null };
}

/** One warning the expiry scan writes: for the keys whose expires_at lies in (`from`, `to`] at the scan's time. */
export interface ExpiryWindow {
  readonly action: "expiring" | "expired";
  /** The ledger's name of the warning: `expiring:<threshold ms>` or `expired`. */
  readonly warning: string;
  /** The threshold (ms before the expiry) for `expiring`; null for `expired`. */
  readonly thresholdMs: number | null;
  readonly from: number;
  readonly to: number;
}

/** The windows a scan at `now` covers, for thresholds `thresholdsMs` (largest first). */
export function expiryWindows(thresholdsMs: readonly number[], now: number): ExpiryWindow[] {
  const windows: ExpiryWindow[] = thresholdsMs.map((thresholdMs, i) => ({
    action: "expiring",
    warning: `expiring:${thresholdMs}`,
    thresholdMs,
    from: now + (thresholdsMs[i + 1] ?? 0),
    to: now + thresholdMs,
  }));
  windows.push({ action: "expired", warning: "expired", thresholdMs: null, from: now - EXPIRED_LOOKBACK_MS, to: now });
  return windows;
}

/** A key chain's credits as the warnings need them (kept in the counter's state with the balance). */
export interface CreditWarningState {
  /** The amount of the last set (creation included) or refill: the default threshold is 10 % of it. */
  base?: number;
  /** When the current period started (counter clock, strictly growing): what makes a warning one of its kind. */
  period?: number;
  /** The warnings given in the current period. */
  warned?: { low?: boolean; exhausted?: boolean };
}

export type CreditWarningKind = "low" | "exhausted";

/** A warning due: the counter keeps it until its audit events are written (store/counter.ts). */
export interface CreditWarning {
  readonly kind: CreditWarningKind;
  readonly period: number;
  /** The counter's clock when it was found. */
  readonly at: number;
  /** The balance at the start of the call and after it. */
  readonly remaining: { readonly old: number; readonly new: number };
  readonly threshold: number;
}

/**
 * The low threshold: the key's own (`low_threshold`), else 10 % of `base` rounded up (so the balance
 * is low when it is below 10 % of it exactly). Low means `remaining < threshold`.
 */
export function lowThreshold(lowThresholdSet: number | null | undefined, base: number): number {
  return lowThresholdSet ?? Math.ceil(base / 10);
}

/**
 * Before a call's cost is taken, after its credit operations and refill: a balance at or above the
 * threshold (and above 0) ends a period in which a warning was given, so both warnings re-arm.
 */
export function rearmCredits(state: CreditWarningState, remaining: number, threshold: number, now: number): void {
  const warned = state.warned;
  if (!warned || (!warned.low && !warned.exhausted)) return;
  if (remaining < Math.max(threshold, 1)) return;
  state.warned = {};
  state.period = Math.max(now, (state.period ?? 0) + 1);
}

/** After the call: the warnings now due (each at most once per period), marked given in `state`. */
export function dueCreditWarnings(
  state: CreditWarningState,
  remaining: { old: number; new: number },
  threshold: number,
  now: number,
): CreditWarning[] {
  const due: CreditWarning[] = [];
  const warned = { ...state.warned };
  const period = state.period ?? 0;
  if (remaining.new < threshold && !warned.low) {
    warned.low = true;
    due.push({ kind: "low", period, at: now, remaining, threshold });
  }
  if (remaining.new === 0 && !warned.exhausted) {
    warned.exhausted = true;
    due.push({ kind: "exhausted", period, at: now, remaining, threshold });
  }
  if (due.length > 0) state.warned = warned;
  return due;
}
