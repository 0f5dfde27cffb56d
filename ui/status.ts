/**
 * A key's status as the keys page shows it, from the fields the API returns. Pure (no DOM), so the
 * Worker's test suite checks it too. A key is disabled while its `enabled` is false (PATCH
 * /v1/keys/{id}); a view without the field is shown as enabled.
 */
export type KeyStatus = "active" | "expiring" | "expired" | "disabled" | "revoked";

export interface StatusFields {
  readonly revoked_at: string | null;
  readonly expires_at: string | null;
  readonly enabled?: boolean;
}

const DAY_MS = 86_400_000;

/** Revoked beats disabled beats expired; "expiring" is active with at most `expiringDays` left. */
export function keyStatus(key: StatusFields, now: number, expiringDays: number): KeyStatus {
  if (key.revoked_at !== null) return "revoked";
  if (key.enabled === false) return "disabled";
  if (key.expires_at === null) return "active";
  const left = Date.parse(key.expires_at) - now;
  if (left <= 0) return "expired";
  return left <= expiringDays * DAY_MS ? "expiring" : "active";
}

export const STATUS_LABELS: Record<KeyStatus, string> = {
  active: "Active",
  expiring: "Expiring soon",
  expired: "Expired",
  disabled: "Disabled",
  revoked: "Revoked",
};
