/**
 * A key's settings in words, as the keys page shows them: scopes, resources, allow-list, rate limits,
 * credits, audit events, and the search over loaded keys. Pure (no DOM), so the Worker's test suite
 * checks it too.
 */
import type { ApiKey, AuditEvent, CreditsRefill, RateLimit, UsageBucket } from "@latchkey/client/types";
import { type KeyStatus, keyStatus } from "./status";

/** The chip for a scope: `*` is "Full access"; others stay as written. */
export const scopeChip = (scope: string): string => (scope === "*" ? "Full access" : scope);

/** One scope as a sentence: `*`, `models:*`, `keys:read`. */
export function scopeInWords(scope: string): string {
  if (scope === "*") return "Full access: every action on every resource";
  const [resource = scope, action = ""] = scope.split(":");
  return action === "*" ? `Every action on ${resource}` : `${action} on ${resource}`;
}

export function resourcesInWords(resources: readonly string[] | null): string {
  return resources === null ? "Every resource" : `Only ${resources.join(", ")}`;
}

export function allowListInWords(ips: readonly string[] | null): string {
  return ips === null ? "Any address" : ips.join(", ");
}

/** Rate-limit windows the edit form offers, in ms (the API takes 1 s to 1 day). */
export const WINDOWS: readonly [number, string][] = [
  [1000, "second"],
  [60_000, "minute"],
  [3_600_000, "hour"],
  [86_400_000, "day"],
];

export function windowInWords(ms: number): string {
  const named = WINDOWS.find(([value]) => value === ms);
  return named ? named[1] : `${ms / 1000} seconds`;
}

const count = (n: number) => n.toLocaleString("en-US");

/** "10 requests per second (burst)". */
export function rateLimitInWords(limit: RateLimit): string {
  return `${count(limit.limit)} ${limit.limit === 1 ? "request" : "requests"} per ${windowInWords(limit.duration_ms)} (${limit.name})`;
}

export function refillInWords(refill: CreditsRefill | null): string {
  return refill === null ? "No refill" : `Refilled to ${count(refill.amount)} every ${refill.interval}`;
}

/** "950 left · Refilled to 1,000 every month", or "None". */
export function creditsInWords(credits: ApiKey["credits"]): string {
  return credits === null ? "None" : `${count(credits.remaining)} left · ${refillInWords(credits.refill)}`;
}

const ACTIONS: Record<AuditEvent["action"], string> = {
  created: "Created",
  imported: "Imported",
  upgraded: "Upgraded to SHA-256 on first use",
  updated: "Updated",
  disabled: "Disabled",
  enabled: "Enabled",
  rotated: "Rotated",
  revoked: "Revoked",
  leaked: "Reported leaked",
  expiring: "Expires soon",
  expired: "Expired",
  credits_low: "Credits low",
  credits_exhausted: "Credits exhausted",
};

/** "Updated by user:carol: name, scopes"; a warning latchkey wrote on its own: "Credits low". */
export function eventInWords(event: Pick<AuditEvent, "action" | "actor" | "changes">): string {
  const fields = Object.keys(event.changes);
  const what = event.action === "updated" && fields.length > 0 ? `: ${fields.join(", ")}` : "";
  const label = ACTIONS[event.action] ?? event.action;
  return event.actor === "latchkey" ? label : `${label} by ${event.actor}${what}`;
}

/** The status filter: every status, or one. */
export type StatusFilter = KeyStatus | "all";

type Searchable = Pick<ApiKey, "name" | "start" | "revoked_at" | "expires_at" | "enabled">;

/** "Active" includes keys expiring soon (they still work); every other status is itself. */
const matches = (actual: KeyStatus, wanted: KeyStatus) =>
  actual === wanted || (wanted === "active" && actual === "expiring");

/** The loaded keys matching a search (name or start, any case) and a status. */
export function filterKeys<K extends Searchable>(
  keys: readonly K[],
  query: string,
  status: StatusFilter,
  now: number,
  expiringDays: number,
): K[] {
  const needle = query.trim().toLowerCase();
  return keys.filter(
    (key) =>
      (needle === "" || key.name.toLowerCase().includes(needle) || key.start.toLowerCase().startsWith(needle)) &&
      (status === "all" || matches(keyStatus(key, now, expiringDays), status)),
  );
}

/** Totals of a range: every verification, and those that passed. */
export function usageTotals(buckets: readonly UsageBucket[]): {
  total: number;
  valid: number;
  busiest: UsageBucket | null;
} {
  let total = 0;
  let valid = 0;
  let busiest: UsageBucket | null = null;
  for (const bucket of buckets) {
    total += bucket.total;
    valid += bucket.valid;
    if (bucket.total > 0 && (!busiest || bucket.total > busiest.total)) busiest = bucket;
  }
  return { total, valid, busiest };
}
