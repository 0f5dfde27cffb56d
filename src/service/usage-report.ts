/** A key's usage report: its verifications per hour or day (UTC) by outcome, with where counts may still be pending. */
import type { Actor } from "../model";
import { USAGE_OUTCOMES, type UsageQueryInput, type UsageReportView } from "../schemas";
import { findVisible } from "./access";
import { StorageUnavailableError, ValidationError } from "./errors";
import { requireScope } from "./rules";
import { USAGE_PENDING_MS } from "./usage-tally";
import type { ReadViews } from "./read-views";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Usage buckets: a day of hours or 30 days by default; at most 31 days of hours or 366 days. */
const DEFAULT_USAGE_BUCKETS = { hour: 24, day: 30 } as const;
const MAX_USAGE_BUCKETS = { hour: 31 * 24, day: 366 } as const;

type Outcome = Lowercase<(typeof USAGE_OUTCOMES)[number]>;

/** One stored count: verifications with `outcome` in the UTC hour starting at `hour` (epoch ms). */
export interface UsageCount {
  readonly hour: number;
  readonly outcome: string;
  readonly count: number;
}

/**
 * The buckets of a usage report for `query` (hours or days, UTC) from the counts `read` returns for the
 * range, and where counts may still be pending. Shared by a key's report and an owner's.
 */
export async function usageBuckets(
  query: UsageQueryInput,
  read: (from: number, to: number) => Promise<readonly UsageCount[]>,
): Promise<Pick<UsageReportView, "buckets" | "pending_from">> {
  const step = query.granularity === "hour" ? HOUR_MS : DAY_MS;
  const now = Date.now();
  const to = query.to === undefined ? now : Date.parse(query.to);
  // Default: the bucket holding `to` and the ones before it.
  const requested =
    query.from === undefined ? to - (DEFAULT_USAGE_BUCKETS[query.granularity] - 1) * step : Date.parse(query.from);
  const from = requested - (requested % step);
  if (from >= to) throw new ValidationError({ from: ["Must be before `to`"] }, "query");
  const count = Math.ceil((to - from) / step);
  if (count > MAX_USAGE_BUCKETS[query.granularity]) {
    throw new ValidationError(
      { from: [`The range may span at most ${MAX_USAGE_BUCKETS[query.granularity]} ${query.granularity}s`] },
      "query",
    );
  }
  const buckets = Array.from({ length: count }, (_, i) => ({
    start: new Date(from + i * step).toISOString(),
    total: 0,
    ...(Object.fromEntries(USAGE_OUTCOMES.map((code) => [code.toLowerCase(), 0])) as Record<Outcome, number>),
  }));
  for (const { hour, outcome, count: n } of await read(from, to)) {
    const bucket = buckets[Math.floor((hour - from) / step)];
    const field = outcome.toLowerCase() as Outcome;
    if (!bucket || !(field in bucket)) continue;
    bucket[field] += n;
    bucket.total += n;
  }
  // Counts reach D1 up to USAGE_PENDING_MS late (later after a failed write): say so rather than show a bare 0.
  const pending = now - USAGE_PENDING_MS;
  const pendingFrom = to > pending ? new Date(Math.max(pending, from)).toISOString() : null;
  return { buckets, pending_from: pendingFrom };
}

/**
 * A key's verifications per hour or day (UTC) by outcome. Counts reach D1 in batches, so the last
 * half minute may not be in yet (service/usage-tally.ts).
 */
export async function usageReport(
  views: ReadViews,
  actor: Actor,
  id: string,
  query: UsageQueryInput,
): Promise<UsageReportView> {
  requireScope(actor, "keys:read");
  const record = await findVisible(views.keys, actor, id);
  const { usage } = views;
  if (!usage) throw new StorageUnavailableError("no usage store");
  const report = await usageBuckets(query, (from, to) => usage.read(record.id, from, to));
  return { key_id: record.id, granularity: query.granularity, ...report };
}
