/**
 * Webhook endpoints: register (the signing secret shown once), list, get, change, delete, rotate the
 * secret (the old one keeps signing for a grace period), and each endpoint's delivery log with a
 * manual retry. Who may do what is webhook-rules.ts; the URL rule is keys/webhook-address.ts.
 */
import type { Config } from "../config";
import { webhookUrlProblem } from "../keys/webhook-address";
import { newSigningSecret } from "../keys/webhook-signature";
import type { Actor } from "../model";
import type {
  CreateWebhookInput,
  ListDeliveriesInput,
  RotateWebhookSecretInput,
  UpdateWebhookInput,
  WebhookDeliveryView,
  WebhookView,
} from "../schemas/webhooks";
import type { D1WebhookStore, DeliveryRow, EndpointChanges, EndpointRow } from "../store/webhooks";
import { ConflictError, NotFoundError, StorageMisconfiguredError, ValidationError } from "./errors";
import { noteEndpointsChanged } from "./webhook-dispatch";
import { actorName } from "./audit-changes";
import { encryptSecret } from "./webhook-secrets";
import { type WebhookAccess, mayManageWebhooksOf, ownerOfNewEndpoint, webhookOwnersOf } from "./webhook-rules";
import type { WebhookViews } from "./read-views";

/** How long a rotated-away secret keeps signing unless the rotation says otherwise. */
export const DEFAULT_SECRET_GRACE_SECONDS = 86_400;
/** The most endpoints one list returns (and one owner may have). */
export const MAX_ENDPOINTS = 100;

export interface WebhookDeps {
  readonly store: D1WebhookStore;
  readonly config: Config;
  /** Puts deliveries on the queue (the delivery consumer attempts them). */
  readonly enqueue: (deliveryIds: readonly string[]) => Promise<void>;
  readonly now?: () => number;
  /** Where list, get and the delivery log read (read-views.ts); default: `store`. */
  readonly views?: WebhookViews;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toWebhookView(e: EndpointRow, now: number): WebhookView {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    events: e.events === null ? null : [...e.events],
    owner_type: e.owner.type,
    owner_id: e.owner.id,
    owners: e.owners === null ? null : [...e.owners],
    enabled: e.enabled,
    disabled_reason: e.disabledReason,
    previous_secret_expires_at:
      e.previousSecret !== null && e.previousExpiresAt !== null && e.previousExpiresAt > now
        ? iso(e.previousExpiresAt)
        : null,
    created_at: iso(e.createdAt)!,
    updated_at: iso(e.updatedAt),
  };
}

export function toDeliveryView(d: DeliveryRow): WebhookDeliveryView {
  return {
    id: d.id,
    event_id: d.eventId,
    type: d.type,
    status: d.status,
    attempts: d.attempts,
    last_response_status: d.lastStatus,
    last_error: d.lastError,
    next_attempt_at: d.status === "pending" ? iso(d.nextAttemptAt) : null,
    created_at: iso(d.createdAt)!,
    updated_at: iso(d.updatedAt)!,
  };
}

export class Webhooks {
  constructor(private readonly deps: WebhookDeps) {}

  private views(): WebhookViews {
    return this.deps.views ?? this.deps.store;
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  private secretKey(): string {
    const key = this.deps.config.webhooks.secretKey;
    if (key === null) {
      throw new StorageMisconfiguredError("WEBHOOK_SECRET_KEY is not set: webhook signing secrets cannot be stored");
    }
    return key;
  }

  private checkUrl(url: string): void {
    const problem = webhookUrlProblem(url, this.deps.config.webhooks.allowLoopback);
    if (problem !== null) throw new ValidationError([{ field: "url", kind: "forbidden", message: problem }]);
  }

  /**
   * The endpoint, if `actor` may read (or change) it; otherwise NotFound (an endpoint out of reach is
   * never confirmed). A root key without the scope is refused (403) before any lookup. `from`: a view
   * for a read (read-views.ts); a write decides on the store of record.
   */
  private async endpoint(
    actor: Actor,
    id: string,
    access: WebhookAccess,
    from: WebhookViews = this.deps.store,
  ): Promise<EndpointRow> {
    webhookOwnersOf(actor, access);
    const endpoint = await from.findEndpoint(id, this.now());
    if (endpoint === null || !mayManageWebhooksOf(actor, endpoint.owner, access)) throw new NotFoundError("webhook");
    return endpoint;
  }

  async create(actor: Actor, input: CreateWebhookInput) {
    const { owner, owners } = ownerOfNewEndpoint(actor, input);
    this.checkUrl(input.url);
    const secretKey = this.secretKey();
    if ((await this.deps.store.listEndpoints([owner], MAX_ENDPOINTS)).length >= MAX_ENDPOINTS) {
      throw new ConflictError(`An owner may register at most ${MAX_ENDPOINTS} webhook endpoints`);
    }
    const id = crypto.randomUUID();
    const secret = newSigningSecret();
    const now = this.now();
    const row: EndpointRow = {
      id,
      owner,
      owners,
      url: input.url,
      description: input.description ?? null,
      events: input.events ?? null,
      enabled: true,
      disabledReason: null,
      secret: await encryptSecret(secretKey, id, secret),
      previousSecret: null,
      previousExpiresAt: null,
      createdBy: actorName(actor),
      createdAt: now,
      updatedAt: null,
    };
    await this.deps.store.insertEndpoint(row);
    noteEndpointsChanged();
    return { ...toWebhookView(row, now), secret };
  }

  async list(actor: Actor): Promise<{ data: WebhookView[] }> {
    const now = this.now();
    const rows = await this.views().listEndpoints(webhookOwnersOf(actor, "read"), MAX_ENDPOINTS);
    return { data: rows.map((row) => toWebhookView(row, now)) };
  }

  async get(actor: Actor, id: string): Promise<WebhookView> {
    return toWebhookView(await this.endpoint(actor, id, "read", this.views()), this.now());
  }

  async update(actor: Actor, id: string, input: UpdateWebhookInput): Promise<WebhookView> {
    const current = await this.endpoint(actor, id, "write");
    if (input.url !== undefined) this.checkUrl(input.url);
    const changes: EndpointChanges = {
      ...(input.url !== undefined ? { url: input.url } : {}),
      ...(input.events !== undefined ? { events: input.events } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
      ...(input.enabled !== undefined ? { enabled: input.enabled, disabledReason: null } : {}),
    };
    if (Object.keys(changes).length === 0) return toWebhookView(current, this.now());
    const now = this.now();
    await this.deps.store.updateEndpoint(id, changes, now);
    if (input.enabled === true) noteEndpointsChanged();
    return toWebhookView({ ...current, ...changes, updatedAt: now }, now);
  }

  async delete(actor: Actor, id: string): Promise<void> {
    await this.endpoint(actor, id, "write");
    await this.deps.store.deleteEndpoint(id);
  }

  /** A new secret, shown once; the current one keeps signing beside it for `grace_seconds`. */
  async rotateSecret(actor: Actor, id: string, input: RotateWebhookSecretInput) {
    const current = await this.endpoint(actor, id, "write");
    const secretKey = this.secretKey();
    const secret = newSigningSecret();
    const now = this.now();
    const grace = input.grace_seconds ?? DEFAULT_SECRET_GRACE_SECONDS;
    const changes: EndpointChanges = {
      secret: await encryptSecret(secretKey, id, secret),
      previousSecret: grace > 0 ? current.secret : null,
      previousExpiresAt: grace > 0 ? now + grace * 1000 : null,
    };
    await this.deps.store.updateEndpoint(id, changes, now);
    return { ...toWebhookView({ ...current, ...changes, updatedAt: now }, now), secret };
  }

  async deliveries(actor: Actor, id: string, query: ListDeliveriesInput) {
    await this.endpoint(actor, id, "read", this.views());
    const before = query.cursor ? parseCursor(query.cursor) : null;
    const rows = await this.views().listDeliveries(id, query.limit + 1, before);
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      data: page.map(toDeliveryView),
      next_cursor: rows.length > query.limit && last ? `${last.createdAt}.${last.id}` : null,
    };
  }

  /** Attempts the delivery again now (one more attempt; a pending one keeps its schedule after it). */
  async retry(actor: Actor, id: string, deliveryId: string): Promise<WebhookDeliveryView> {
    const endpoint = await this.endpoint(actor, id, "write");
    const delivery = await this.deps.store.findDelivery(deliveryId);
    if (delivery === null || delivery.endpointId !== endpoint.id) throw new NotFoundError("delivery");
    if (!endpoint.enabled) throw new ConflictError("The endpoint is disabled: enable it before retrying a delivery");
    const now = this.now();
    await this.deps.store.updateDelivery(deliveryId, delivery.status, { status: "pending", nextAttemptAt: now }, now);
    await this.deps.enqueue([deliveryId]);
    return toDeliveryView({ ...delivery, status: "pending", nextAttemptAt: now, updatedAt: now });
  }
}

function parseCursor(cursor: string): { at: number; id: string } {
  const dot = cursor.indexOf(".");
  const at = Number(cursor.slice(0, dot));
  if (dot < 1 || !Number.isInteger(at)) {
    throw new ValidationError([{ field: "cursor", kind: "invalid", message: "Not a cursor from this list" }], "query");
  }
  return { at, id: cursor.slice(dot + 1) };
}
