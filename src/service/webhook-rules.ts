/**
 * Webhooks' rules as pure functions (no storage, no clock but what is passed in): which event type an
 * audit action is, whose endpoint an actor may register and manage, which endpoint receives which
 * event, what a payload holds, and when a failed delivery is tried again. The webhook service
 * (webhooks.ts), the dispatcher and the delivery call these; test/rules/webhook-rules.test.ts calls them directly.
 *
 * Who may register and manage endpoints: a person for their own keys, a workspace admin for the
 * workspace's keys, an operator deployment-wide (every owner's events), a trusted service (RPC) for
 * the owner it names, and a root key for owners it covers (`rootEndpointOwner`): its endpoints belong to
 * its chain (it and its rotations) and receive the events of the owner patterns fixed at registration.
 * An ordinary API key may not: an endpoint receives the events of every key of its owner, beyond any
 * key's powers.
 */
import { patternWithin } from "../keys/owner-patterns";
import type { Actor, AuditEvent, Owner, RootKeyRecord } from "../model";
import { type WebhookEventType, type WebhookOwner, type WebhookOwnerType, WEBHOOK_EVENT_TYPES } from "../webhook-model";
import { ForbiddenError, ValidationError } from "./errors";
import { ownerCovered, requireRootScope, rootNamedOwner } from "./root-rules";

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
  /** A root key's endpoint: the owner patterns whose events it receives (fixed at registration). */
  readonly owners?: readonly string[] | null;
  /** The types it receives; null: every type. */
  readonly events: readonly WebhookEventType[] | null;
  readonly enabled: boolean;
}

/**
 * Does `endpoint` receive `event` of type `type`? Only an enabled endpoint, only the events of the
 * owners it is for, only the types it subscribed to.
 */
export function endpointReceives(endpoint: Subscription, event: { readonly owner: Owner }, type: WebhookEventType) {
  if (!endpoint.enabled) return false;
  return receivesOwner(endpoint, event.owner) && (endpoint.events === null || endpoint.events.includes(type));
}

/**
 * Whose events an endpoint receives: a person's or a workspace's, that owner's exactly; a deployment
 * endpoint, every owner's; a root key's, those of the owners its stored patterns cover (never more,
 * whatever the root key covers now). An owner kind without a case here receives nothing.
 */
function receivesOwner(endpoint: Subscription, owner: Owner): boolean {
  switch (endpoint.owner.type) {
    case "deployment":
      return true;
    case "root":
      return ownerCovered(endpoint.owners ?? [], owner);
    case "user":
    case "workspace":
      return endpoint.owner.type === owner.type && endpoint.owner.id === owner.id;
    default:
      return false;
  }
}

/** The owners whose endpoints an API key may manage: none (a customer's key registers no webhook). */
export function apiKeyWebhookOwners(_actor: Extract<Actor, { kind: "api_key" }>): readonly WebhookOwner[] {
  return [];
}

/** Reading endpoints (list, get, deliveries), or changing them; a root key needs `keys:read` or `keys:write`. */
export type WebhookAccess = "read" | "write";

/** Every owner whose endpoints `actor` may register, read and manage (a root key: its chain's, with the scope). */
export function webhookOwnersOf(actor: Actor, access: WebhookAccess = "read"): readonly WebhookOwner[] {
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
      return apiKeyWebhookOwners(actor);
    case "root":
      requireRootScope(actor.root, access === "write" ? "keys:write" : "keys:read");
      return [{ type: "root", id: actor.root.chain }];
  }
}

export function mayManageWebhooksOf(actor: Actor, owner: WebhookOwner, access: WebhookAccess = "read"): boolean {
  return webhookOwnersOf(actor, access).some((o) => o.type === owner.type && o.id === owner.id);
}

/** Whose events a new endpoint asks for, as the create body says it. */
export interface EndpointOwnerRequest {
  readonly owner?: "user" | "workspace" | "deployment" | undefined;
  readonly owner_id?: string | undefined;
  readonly owners?: readonly string[] | undefined;
}

/** A new endpoint's owner and, for a root key's, the owner patterns it receives. */
export interface NewEndpointOwner {
  readonly owner: WebhookOwner;
  readonly owners: readonly string[] | null;
}

/**
 * The owner of an endpoint `actor` registers, as `request` asks (no `owner`: a person's own, a
 * service's named owner). An `owner_id` must be that owner's id, and only a root key gives `owners`.
 * Throws a ForbiddenError naming the field when it may not.
 */
export function ownerOfNewEndpoint(actor: Actor, request: EndpointOwnerRequest): NewEndpointOwner {
  if (actor.kind === "root") return rootEndpointOwner(actor.root, request);
  if (request.owners !== undefined) {
    throw new ForbiddenError("owners", "Only a root key registers an endpoint for owner patterns");
  }
  const owners = webhookOwnersOf(actor, "write");
  if (owners.length === 0) {
    throw new ForbiddenError(
      "owner",
      "Webhooks are registered by a person, an operator, a root key or a trusted service, not by an API key",
      "role",
    );
  }
  const requested = request.owner;
  const owner = requested === undefined ? owners[0]! : owners.find((o) => o.type === requested);
  if (!owner) {
    const why: Record<typeof requested & string, string> = {
      user: "Only a person registers webhooks for their own keys",
      workspace: "Only a workspace admin registers webhooks for the workspace's keys",
      deployment: "Only an operator registers deployment-wide webhooks",
    };
    const reason =
      actor.kind === "service" ? "A trusted Worker registers webhooks only for the owner it names" : why[requested!];
    throw new ForbiddenError("owner", reason, "role");
  }
  if (request.owner_id !== undefined && request.owner_id !== owner.id) {
    throw new ForbiddenError(
      "owner_id",
      "Only a root key registers webhooks for another owner; this caller, only its own",
    );
  }
  return { owner, owners: null };
}

/**
 * A root key's new endpoint (with `keys:write`): for one owner it covers (`owner` + `owner_id`, both
 * required, as on /v1/keys) or for owner patterns within its own (`owners`). It belongs to the root
 * key's chain; the patterns are stored with it, and only the events of owners they cover reach it.
 */
export function rootEndpointOwner(root: RootKeyRecord, request: EndpointOwnerRequest): NewEndpointOwner {
  requireRootScope(root, "keys:write");
  const owner: WebhookOwner = { type: "root", id: root.chain };
  if (request.owners !== undefined) {
    if (request.owner !== undefined || request.owner_id !== undefined) {
      throw new ValidationError({ owners: ["Give owners, or owner and owner_id, not both"] });
    }
    const outside = request.owners.find((pattern) => !patternWithin(pattern, root.owners));
    if (outside !== undefined) {
      throw new ForbiddenError(
        "owners",
        `This root key does not cover ${outside} (it covers ${root.owners.join(", ")})`,
      );
    }
    return { owner, owners: [...request.owners] };
  }
  if (request.owner === "deployment") {
    throw new ForbiddenError("owner", "Only an operator registers deployment-wide webhooks", "role");
  }
  // One owner is stored as its pattern: an id with `*` would read as a wildcard there.
  if (request.owner_id?.includes("*")) {
    throw new ValidationError({ owner_id: ['Names one owner, without "*": for every owner of a type, give owners'] });
  }
  const named = rootNamedOwner(root, { type: request.owner, id: request.owner_id }, { type: "owner", id: "owner_id" });
  return { owner, owners: [`${named.type}:${named.id}`] };
}

/** An event a webhook carries: a key's audit event, or an owner's (its credit warnings, about no key). */
export interface WebhookEvent {
  readonly id: string;
  readonly keyId: string | null;
  readonly owner: Owner;
  readonly action: string;
  readonly actor: string;
  readonly at: number;
  readonly changes: AuditEvent["changes"];
}

/**
 * The body of a delivery (Standard Webhooks: type, timestamp, data): ids, owner and what changed
 * (`key_id` null for an owner's own event).
 */
export function webhookPayload(event: WebhookEvent, type: WebhookEventType): string {
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
