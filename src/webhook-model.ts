/**
 * Webhooks' shared vocabulary (like model.ts, shared by every layer): whose events an endpoint
 * receives and the event types a delivery can carry.
 */

export type WebhookOwnerType = "user" | "workspace" | "deployment";
/** Whose keys' events an endpoint receives; `deployment` (id `*`): every owner's. */
export interface WebhookOwner {
  readonly type: WebhookOwnerType;
  readonly id: string;
}

export const WEBHOOK_EVENT_TYPES = [
  "key.created",
  "key.updated",
  "key.disabled",
  "key.enabled",
  "key.rotated",
  "key.revoked",
  "key.expiring",
  "key.expired",
  "key.leaked",
  "credits.low",
  "credits.exhausted",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
