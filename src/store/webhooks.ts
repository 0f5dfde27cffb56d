/**
 * Webhooks in D1 (migrations/0009_webhooks.sql, 0014_webhook_scopes.sql): the endpoints, the outbox of
 * audit events (a key's, or an owner's credit warnings) the dispatcher reads after its cursor, and the
 * deliveries. Every call is bounded by the D1 timeout and fails as StorageUnavailableError. Signing
 * secrets arrive and leave encrypted; this module never sees one.
 */
import type { D1Queries } from "./d1-session";
import { attemptUnclassified, newestFirst } from "./d1-sql";
import type { AuditEvent, OwnerType } from "../model";
import type { WebhookEventType, WebhookOwner, WebhookOwnerType } from "../webhook-model";

export interface EndpointRow {
  readonly id: string;
  readonly owner: WebhookOwner;
  /** A root key's endpoint: the owner patterns whose events it receives; null for the other kinds. */
  readonly owners: readonly string[] | null;
  readonly url: string;
  readonly description: string | null;
  readonly events: readonly WebhookEventType[] | null;
  readonly enabled: boolean;
  /** Why the service disabled it (`gone`: the receiver answered 410); null when enabled or disabled by a person. */
  readonly disabledReason: string | null;
  /** The signing secret, encrypted (webhook-secrets.ts). */
  readonly secret: string;
  readonly previousSecret: string | null;
  readonly previousExpiresAt: number | null;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly updatedAt: number | null;
}

export type DeliveryStatus = "pending" | "delivered" | "failed";

export interface DeliveryRow {
  readonly id: string;
  readonly endpointId: string;
  readonly eventId: string;
  readonly type: WebhookEventType;
  readonly payload: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
  readonly nextAttemptAt: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

const ENDPOINT_COLUMNS =
  "id, owner_type, owner_id, owners, url, description, events, enabled, disabled_reason, secret, previous_secret, previous_expires_at, created_by, created_at, updated_at";

/**
 * Whether an endpoint may be delivered to now (bind: now): a root key's only while some key of its
 * chain is live (not revoked, not expired); every other endpoint, always.
 */
const ACTIVE = `(owner_type != 'root' OR EXISTS (SELECT 1 FROM root_keys r WHERE r.chain_id = webhook_endpoints.owner_id
  AND r.revoked_at IS NULL AND (r.expires_at IS NULL OR r.expires_at > ?)))`;
const DELIVERY_COLUMNS =
  "id, endpoint_id, event_id, type, payload, status, attempts, last_status, last_error, next_attempt_at, created_at, updated_at";

type Row = Record<string, string | number | null>;

function toEndpoint(r: Row): EndpointRow {
  return {
    id: r.id as string,
    owner: { type: r.owner_type as WebhookOwnerType, id: r.owner_id as string },
    owners: r.owners === null ? null : (JSON.parse(r.owners as string) as string[]),
    url: r.url as string,
    description: r.description as string | null,
    events: r.events === null ? null : (JSON.parse(r.events as string) as WebhookEventType[]),
    enabled: r.enabled === 1,
    disabledReason: r.disabled_reason as string | null,
    secret: r.secret as string,
    previousSecret: r.previous_secret as string | null,
    previousExpiresAt: r.previous_expires_at as number | null,
    createdBy: r.created_by as string,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number | null,
  };
}

function toDelivery(r: Row): DeliveryRow {
  return {
    id: r.id as string,
    endpointId: r.endpoint_id as string,
    eventId: r.event_id as string,
    type: r.type as WebhookEventType,
    payload: r.payload as string,
    status: r.status as DeliveryStatus,
    attempts: r.attempts as number,
    lastStatus: r.last_status as number | null,
    lastError: r.last_error as string | null,
    nextAttemptAt: r.next_attempt_at as number | null,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

/** An event of the outbox: a key's audit event, or an owner's (no key). */
export interface OutboxEvent {
  readonly id: string;
  readonly keyId: string | null;
  readonly owner: { readonly type: OwnerType; readonly id: string };
  readonly action: string;
  readonly actor: string;
  readonly at: number;
  readonly changes: AuditEvent["changes"];
}

function toEvent(r: Row): OutboxEvent {
  return {
    id: r.id as string,
    keyId: r.key_id as string | null,
    owner: { type: r.owner_type as OwnerType, id: r.owner_id as string },
    action: r.action as string,
    actor: r.actor as string,
    at: r.at as number,
    changes: JSON.parse(r.changes as string) as AuditEvent["changes"],
  };
}

/** What PATCH and rotation may change of an endpoint. */
export type EndpointChanges = Partial<
  Pick<
    EndpointRow,
    "url" | "description" | "events" | "enabled" | "disabledReason" | "secret" | "previousSecret" | "previousExpiresAt"
  >
>;

const ENDPOINT_FIELDS: { [F in keyof Required<EndpointChanges>]: [string, (v: EndpointChanges[F]) => unknown] } = {
  url: ["url", (v) => v],
  description: ["description", (v) => v],
  events: ["events", (v) => (v === null || v === undefined ? null : JSON.stringify(v))],
  enabled: ["enabled", (v) => (v ? 1 : 0)],
  disabledReason: ["disabled_reason", (v) => v],
  secret: ["secret", (v) => v],
  previousSecret: ["previous_secret", (v) => v],
  previousExpiresAt: ["previous_expires_at", (v) => v],
};

/** What a delivery attempt changes. */
export type DeliveryChanges = Partial<
  Pick<DeliveryRow, "status" | "attempts" | "lastStatus" | "lastError" | "nextAttemptAt">
>;

const DELIVERY_FIELDS: Record<keyof Required<DeliveryChanges>, string> = {
  status: "status",
  attempts: "attempts",
  lastStatus: "last_status",
  lastError: "last_error",
  nextAttemptAt: "next_attempt_at",
};

/** A delivery the dispatcher records: one per (event, endpoint that receives it). */
export type NewDelivery = Pick<DeliveryRow, "id" | "endpointId" | "eventId" | "type" | "payload">;

export class D1WebhookStore {
  constructor(protected readonly db: D1Queries) {}

  /**
   * The outboxes the dispatcher reads, each read and advanced in its own database (outboxAfterCursor,
   * recordDispatch's `outbox`): this database's alone; with sharding by owner, every database's
   * (store/sharded-webhooks.ts).
   */
  outboxes(): readonly D1WebhookStore[] {
    return [this];
  }

  /** Before the cron's dispatch: with one database, nothing (sharding by owner: the relay rows). */
  async prepareOutboxes(): Promise<void> {}

  insertEndpoint(e: EndpointRow): Promise<void> {
    return attemptUnclassified("webhook insert", async () => {
      await this.db
        .prepare(
          `INSERT INTO webhook_endpoints (${ENDPOINT_COLUMNS}) VALUES (${ENDPOINT_COLUMNS.replace(/[a-z_]+/g, "?")})`,
        )
        .bind(
          e.id,
          e.owner.type,
          e.owner.id,
          e.owners === null ? null : JSON.stringify(e.owners),
          e.url,
          e.description,
          e.events === null ? null : JSON.stringify(e.events),
          e.enabled ? 1 : 0,
          e.disabledReason,
          e.secret,
          e.previousSecret,
          e.previousExpiresAt,
          e.createdBy,
          e.createdAt,
          e.updatedAt,
        )
        .run();
    });
  }

  /** The endpoint, with whether it may be delivered to at `now` (`active`: see ACTIVE). */
  findEndpoint(id: string, now: number): Promise<(EndpointRow & { readonly active: boolean }) | null> {
    return attemptUnclassified("webhook read", async () => {
      const row = await this.db
        .prepare(`SELECT ${ENDPOINT_COLUMNS}, ${ACTIVE} AS active FROM webhook_endpoints WHERE id = ?`)
        .bind(now, id)
        .first<Row>();
      return row ? { ...toEndpoint(row), active: row.active === 1 } : null;
    });
  }

  /** The endpoints of `owners`, newest first, at most `limit`. */
  listEndpoints(owners: readonly WebhookOwner[], limit: number): Promise<EndpointRow[]> {
    if (owners.length === 0) return Promise.resolve([]);
    return attemptUnclassified("webhook list", async () => {
      const where = owners.map(() => "(owner_type = ? AND owner_id = ?)").join(" OR ");
      const { results } = await this.db
        .prepare(
          `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT ?`,
        )
        .bind(...owners.flatMap((o) => [o.type, o.id]), limit)
        .all<Row>();
      return results.map(toEndpoint);
    });
  }

  /** Whether any endpoint is enabled (while none is, the outbox stays empty). */
  anyEnabled(): Promise<boolean> {
    return attemptUnclassified("webhook exists", async () => {
      const row = await this.db.prepare("SELECT 1 AS one FROM webhook_endpoints WHERE enabled = 1 LIMIT 1").first();
      return row !== null;
    });
  }

  /** Every enabled endpoint that may be delivered to at `now` (the dispatcher matches them to events). */
  enabledEndpoints(now: number): Promise<EndpointRow[]> {
    return attemptUnclassified("webhook endpoints", async () => {
      const { results } = await this.db
        .prepare(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE enabled = 1 AND ${ACTIVE}`)
        .bind(now)
        .all<Row>();
      return results.map(toEndpoint);
    });
  }

  /**
   * Deletes at most `limit` endpoints of root key chains with no live key left (expired: a revocation
   * deletes them itself), with their delivery logs; how many.
   */
  purgeInactiveEndpoints(now: number, limit: number): Promise<number> {
    return attemptUnclassified("webhook purge", async () => {
      const dead = `SELECT id FROM webhook_endpoints WHERE owner_type = 'root' AND NOT ${ACTIVE} ORDER BY id LIMIT ?`;
      const [, endpoints] = await this.db.batch([
        this.db.prepare(`DELETE FROM webhook_deliveries WHERE endpoint_id IN (${dead})`).bind(now, limit),
        this.db.prepare(`DELETE FROM webhook_endpoints WHERE id IN (${dead})`).bind(now, limit),
      ]);
      return endpoints?.meta.changes ?? 0;
    });
  }

  updateEndpoint(id: string, changes: EndpointChanges, at: number): Promise<void> {
    const entries = Object.entries(changes).filter(([, v]) => v !== undefined) as [keyof EndpointChanges, unknown][];
    return attemptUnclassified("webhook update", async () => {
      const sets = entries.map(([field]) => `${ENDPOINT_FIELDS[field][0]} = ?`);
      const values = entries.map(([field, value]) => (ENDPOINT_FIELDS[field][1] as (v: unknown) => unknown)(value));
      await this.db
        .prepare(`UPDATE webhook_endpoints SET ${[...sets, "updated_at = ?"].join(", ")} WHERE id = ?`)
        .bind(...values, at, id)
        .run();
    });
  }

  /** Deletes the endpoint and its delivery log. */
  deleteEndpoint(id: string): Promise<void> {
    return attemptUnclassified("webhook delete", async () => {
      await this.db.batch([
        this.db.prepare("DELETE FROM webhook_deliveries WHERE endpoint_id = ?").bind(id),
        this.db.prepare("DELETE FROM webhook_endpoints WHERE id = ?").bind(id),
      ]);
    });
  }

  /**
   * Events after the dispatcher's cursor, in commit order: a key's audit events and an owner's (by the
   * outbox row's `source`); an event since deleted: none.
   */
  outboxAfterCursor(limit: number): Promise<{ seq: number; event: OutboxEvent | null }[]> {
    return attemptUnclassified("webhook outbox", async () => {
      const { results } = await this.db
        .prepare(
          `SELECT o.seq AS seq, COALESCE(k.id, w.id) AS id, k.key_id AS key_id,
             COALESCE(k.owner_type, w.owner_type) AS owner_type, COALESCE(k.owner_id, w.owner_id) AS owner_id,
             COALESCE(k.action, w.action) AS action, COALESCE(k.actor, w.actor) AS actor,
             COALESCE(k.at, w.at) AS at, COALESCE(k.changes, w.changes) AS changes
           FROM webhook_outbox o
             LEFT JOIN key_events k ON o.source = 'key' AND k.id = o.event_id
             LEFT JOIN owner_events w ON o.source = 'owner' AND w.id = o.event_id
           WHERE o.seq > (SELECT seq FROM webhook_cursor WHERE id = 1) ORDER BY o.seq LIMIT ?`,
        )
        .bind(limit)
        .all<Row>();
      return results.map((r) => ({ seq: r.seq as number, event: r.id === null ? null : toEvent(r) }));
    });
  }

  /**
   * Records the deliveries (a delivery already recorded stays as it is) and moves the cursor to
   * `toSeq`, in one batch; returns the ids newly recorded, which the caller enqueues.
   */
  recordDispatch(
    deliveries: readonly NewDelivery[],
    toSeq: number,
    at: number,
    outbox: D1WebhookStore = this,
  ): Promise<string[]> {
    return attemptUnclassified("webhook dispatch", async () => {
      const inserts = deliveries.map((d) =>
        this.db
          .prepare(
            `INSERT OR IGNORE INTO webhook_deliveries (${DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'pending', 0, NULL, NULL, ?, ?, ?)`,
          )
          .bind(d.id, d.endpointId, d.eventId, d.type, d.payload, at, at, at),
      );
      const advance = [
        outbox.db.prepare("UPDATE webhook_cursor SET seq = MAX(seq, ?) WHERE id = 1").bind(toSeq),
        outbox.db.prepare("DELETE FROM webhook_outbox WHERE seq <= ?").bind(toSeq),
      ];
      // Another database's outbox (sharding by owner): the deliveries first, then its cursor. A crash
      // between the two re-reads those events, and their deliveries' ids make the second insert nothing.
      const sameDatabase = outbox.db === this.db;
      const statements = sameDatabase ? [...inserts, ...advance] : inserts;
      const results = statements.length > 0 ? await this.db.batch(statements) : [];
      if (!sameDatabase) await outbox.db.batch(advance);
      return deliveries.filter((_, i) => (results[i]?.meta.changes ?? 0) > 0).map((d) => d.id);
    });
  }

  findDelivery(id: string): Promise<DeliveryRow | null> {
    return attemptUnclassified("delivery read", async () => {
      const row = await this.db
        .prepare(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?`)
        .bind(id)
        .first<Row>();
      return row ? toDelivery(row) : null;
    });
  }

  /** An endpoint's deliveries, newest first, older than `before` (an ISO cursor: created_at, id). */
  listDeliveries(endpointId: string, limit: number, before: { at: number; id: string } | null): Promise<DeliveryRow[]> {
    return attemptUnclassified("delivery list", async () => {
      const rows = await newestFirst<Row>(this.db, {
        select: `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries`,
        time: "created_at",
        where: ["endpoint_id = ?"],
        params: [endpointId],
        after: before && { time: before.at, id: before.id },
        limit,
      });
      return rows.map(toDelivery);
    });
  }

  /** Updates a delivery only while its status is still `from` (so two attempts cannot both record). */
  updateDelivery(id: string, from: DeliveryStatus, changes: DeliveryChanges, at: number): Promise<boolean> {
    const entries = Object.entries(changes).filter(([, v]) => v !== undefined) as [keyof DeliveryChanges, unknown][];
    return attemptUnclassified("delivery update", async () => {
      const sets = entries.map(([field]) => `${DELIVERY_FIELDS[field]} = ?`);
      const result = await this.db
        .prepare(`UPDATE webhook_deliveries SET ${[...sets, "updated_at = ?"].join(", ")} WHERE id = ? AND status = ?`)
        .bind(...entries.map(([, v]) => v as string | number | null), at, id, from)
        .run();
      return result.meta.changes > 0;
    });
  }

  /** Pending deliveries due before `before` (lost messages: the cron enqueues them again). */
  overdueDeliveries(before: number, limit: number): Promise<DeliveryRow[]> {
    return attemptUnclassified("delivery sweep", async () => {
      const { results } = await this.db
        .prepare(
          `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at < ? ORDER BY next_attempt_at LIMIT ?`,
        )
        .bind(before, limit)
        .all<Row>();
      return results.map(toDelivery);
    });
  }

  /** Deletes finished deliveries last changed before `before`; how many. */
  purgeDeliveries(before: number, limit: number): Promise<number> {
    return attemptUnclassified("delivery purge", async () => {
      const result = await this.db
        .prepare(
          "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE status != 'pending' AND updated_at < ? LIMIT ?)",
        )
        .bind(before, limit)
        .run();
      return result.meta.changes;
    });
  }
}
