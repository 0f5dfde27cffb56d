/**
 * Webhooks' rules as pure functions (no storage, no clock but what is passed in): which event type an
 * audit action is, whose endpoint an actor may register and manage, which endpoint receives which
 * event, what a payload holds, and when a failed delivery is tried again. The webhook service
 * (webhooks.ts), the dispatcher and the delivery call these; test/rules/webhook-rules.test.ts calls them directly.
 *
 * Who may register and manage endpoints: a person for their own keys, a workspace admin for the
 * workspace's keys, an operator deployment-wide (every owner's events), a trusted service (RPC) for
 * the owner it names, and a root key for the owners it covers (`rootKeyWebhookOwners`). An ordinary API
 * key may not: an endpoint receives the events of every key of its owner, beyond any key's powers.
 */
import type { Actor, AuditEvent, Owner } from "../model";
import { type WebhookEventType, type WebhookOwner, type WebhookOwnerType, WEBHOOK_EVENT_TYPES } from "../webhook-model";
import { ForbiddenError } from "./errors";

export { WEBHOOK_EVENT_TYPES, type WebhookEventType, type WebhookOwner, type WebhookOwnerType };

export const DEPLOYMENT: WebhookOwner = { type: "deployment", id: "*" };

/**
 * Each audit action's event type. An imported key is `key.created` (with `action: "imported"` in its
 * data): to a receiver it is a new key like any other. An action without a type emits nothing.
 */
export const EVENT_TYPE_BY_ACTION: Readonly<Record<string, WebhookEventType>> = {
  created: "key.created",
  imported: "key.created",
  updated: "key.updated",
  disabled: "key.disabled",
  enabled: "key.enabled",
  rotated: "key.rotated",
  revoked: "key.revoked",
  expiring: "key.expiring",
  expired: "key.expired",
  leaked: "key.leaked",
  credits_low: "credits.low",
  credits_exhausted: "credits.exhausted",
};

export function eventTypeOf(action: string): WebhookEventType | null {
  return Object.hasOwn(EVENT_TYPE_BY_ACTION, action) ? EVENT_TYPE_BY_ACTION[action]! : null;
}

/** What deciding a delivery needs of an endpoint. */
export interface Subscription {
  readonly owner: WebhookOwner;
  /** The types it receives; null: every type. */
  readonly events: readonly WebhookEventType[] | null;
  readonly enabled: boolean;
}

/**
 * Does `endpoint` receive `event` of type `type`? Only an enabled endpoint, only its own owner's
 * keys' events (a deployment endpoint: every owner's), only the types it subscribed to.
 */
export function endpointReceives(endpoint: Subscription, event: { readonly owner: Owner }, type: WebhookEventType) {
  if (!endpoint.enabled) return false;
  const ownerMatches =
    endpoint.owner.type === "deployment" ||
    (endpoint.owner.type === event.owner.type && endpoint.owner.id === event.owner.id);
  return ownerMatches && (endpoint.events === null || endpoint.events.includes(type));
}

/** The owners whose endpoints an API key may manage: none (a customer's key registers no webhook). */
export function rootKeyWebhookOwners(_actor: Extract<Actor, { kind: "api_key" }>): readonly WebhookOwner[] {
  return [];
}

/** Every owner whose endpoints `actor` may register, read and manage. */
export function webhookOwnersOf(actor: Actor): readonly WebhookOwner[] {
  switch (actor.kind) {
    case "user": {
      const owners: WebhookOwner[] = [{ type: "user", id: actor.sub }];
      if (actor.orgId !== null && actor.workspaceAdmin) owners.push({ type: "workspace", id: actor.orgId });
      if (actor.operator) owners.push(DEPLOYMENT);
      return owners;
    }
    case "service":
      return [actor.owner];
    case "api_key":
      return rootKeyWebhookOwners(actor);
    case "root":
      // A root key names the owner it acts for in each request; webhook bodies cannot name one yet,
      // so a root key registers none (403): an operator registers deployment-wide endpoints instead.
      return [];
  }
}

export function mayManageWebhooksOf(actor: Actor, owner: WebhookOwner): boolean {
  return webhookOwnersOf(actor).some((o) => o.type === owner.type && o.id === owner.id);
}

/**
 * The owner of an endpoint `actor` registers, asking for `requested` (absent: a person's own, a
 * service's or root key's own owner). Throws a ForbiddenError naming `owner` when it may not.
 */
export function ownerOfNewEndpoint(actor: Actor, requested: WebhookOwnerType | undefined): WebhookOwner {
  const owners = webhookOwnersOf(actor);
  if (owners.length === 0) {
    throw new ForbiddenError(
      "owner",
      "Webhooks are registered by a person, an operator, a root key or a trusted service, not by an API key",
      "role",
    );
  }
  if (requested === undefined) return owners[0]!;
  const owner = owners.find((o) => o.type === requested);
  if (owner) return owner;
  const why: Record<WebhookOwnerType, string> = {
    user: "Only a person registers webhooks for their own keys",
    workspace: "Only a workspace admin registers webhooks for the workspace's keys",
    deployment: "Only an operator registers deployment-wide webhooks",
  };
  throw new ForbiddenError("owner", why[requested], "role");
}

/** The body of a delivery (Standard Webhooks: type, timestamp, data): ids, owner and what changed. */
export function webhookPayload(event: AuditEvent, type: WebhookEventType): string {
  return JSON.stringify({
    type,
    timestamp: new Date(event.at).toISOString(),
    data: {
      event_id: event.id,
      key_id: event.keyId,
      owner: { type: event.owner.type, id: event.owner.id },
      action: event.action,
      actor: event.actor,
      changes: event.changes,
    },
  });
}

/** The webhook-id of `event` delivered to `endpointId`: the same for every attempt and re-dispatch. */
export async function deliveryId(eventId: string, endpointId: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${eventId}.${endpointId}`));
  return `msg_${[...new Uint8Array(digest).slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Attempts before a delivery fails for good: the schedule below spans about a day. */
export const MAX_ATTEMPTS = 10;
const FIRST_DELAY_MS = 30_000;
const GROWTH = 3;
const MAX_BACKOFF_MS = 6 * 3600_000;
/** The longest delay a queue message may have (Cloudflare Queues: 12 hours). */
export const MAX_DELAY_MS = 12 * 3600_000;

/**
 * The wait after the `attempts`-th failed attempt: 30 s, tripled each time up to 6 hours, times a
 * jitter between 0.8 and 1.2 (`random` in [0, 1)); never sooner than the receiver's Retry-After.
 * Null when the attempts are spent.
 */
export function retryDelayMs(attempts: number, random: number, retryAfterMs: number | null): number | null {
  if (attempts >= MAX_ATTEMPTS) return null;
  const backoff = Math.min(FIRST_DELAY_MS * GROWTH ** (attempts - 1), MAX_BACKOFF_MS);
  const jittered = Math.round(backoff * (0.8 + 0.4 * random));
  return Math.min(Math.max(jittered, retryAfterMs ?? 0), MAX_DELAY_MS);
}

/** A Retry-After header (seconds or an HTTP date) as milliseconds from `now`, or null. */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (header === null) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
