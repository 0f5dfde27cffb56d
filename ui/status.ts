/**
 * A key's status as the keys page shows it, and the row actions it offers, from the fields the API
 * returns. Pure (no DOM), so the Worker's test suite checks it too. A key is disabled while its `enabled` is false (PATCH
 * /v1/keys/{id}); a view without the field is shown as enabled.
 */
export type KeyStatus = "active" | "expiring" | "expired" | "disabled" | "revoked";

export interface StatusFields {
  readonly revoked_at: string | null;
  readonly expires_at: string | null;
  readonly enabled?: boolean;
}

const DAY_MS = 86_400_000;

/** Milliseconds until the key expires (Infinity without an expiry); 0 or less: expired. */
function timeLeft(key: StatusFields, now: number): number {
  return key.expires_at === null ? Infinity : Date.parse(key.expires_at) - now;
}

/** Whether the key is past its expiry, whatever else it is (a disabled key may be expired too). */
export function isExpired(key: StatusFields, now: number): boolean {
  return timeLeft(key, now) <= 0;
}

/** Revoked beats disabled beats expired; "expiring" is active with at most `expiringDays` left. */
export function keyStatus(key: StatusFields, now: number, expiringDays: number): KeyStatus {
  if (key.revoked_at !== null) return "revoked";
  if (key.enabled === false) return "disabled";
  if (isExpired(key, now)) return "expired";
  return timeLeft(key, now) <= expiringDays * DAY_MS ? "expiring" : "active";
}

/** The row actions, in the order the row shows them. */
export type KeyAction = "rotate" | "disable" | "enable" | "revoke";

/**
 * What a key's row offers: only what the API would accept and what makes sense. A revoked key offers
 * nothing; an expired key cannot be rotated (the API answers 409) and is not worth disabling; a disabled
 * key offers Enable instead of Disable (and may still be rotated and revoked, as the API allows).
 */
export function keyActions(key: StatusFields, now: number): KeyAction[] {
  if (key.revoked_at !== null) return [];
  const actions: KeyAction[] = [];
  const expired = isExpired(key, now);
  if (!expired) actions.push("rotate");
  if (key.enabled === false) actions.push("enable");
  else if (!expired) actions.push("disable");
  actions.push("revoke");
  return actions;
}

export const STATUS_LABELS: Record<KeyStatus, string> = {
  active: "Active",
  expiring: "Expiring soon",
  expired: "Expired",
  disabled: "Disabled",
  revoked: "Revoked",
};
