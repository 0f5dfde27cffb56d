/**
 * Webhooks' shared vocabulary (like model.ts, shared by every layer): whose events an endpoint
 * receives and the event types a delivery can carry.
 */

export type WebhookOwnerType = "user" | "workspace" | "deployment" | "root";
/**
 * Who an endpoint belongs to: a person (`user`), a workspace, the deployment (id `*`: every owner's
 * events), or a root key's chain (`root`, id: the chain; the endpoint's owner patterns say whose events).
 */
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
