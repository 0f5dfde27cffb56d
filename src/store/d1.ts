/**
 * KeyStore on D1, the store of record. Rows hold only the key's SHA-256 (`hash`, unique index),
 * never the key. Times are epoch milliseconds; JSON columns hold scopes, resources and metadata.
 * Every D1 failure surfaces as StorageUnavailableError, with the cause kept for the log.
 */
import type { LegacyFormat } from "../keys/legacy";
import type { AuditAction, AuditEvent, KeyRecord, OwnerType } from "../model";
import { withTimeout } from "./timeout";
import {
  type Change,
  type EventPage,
  type KeyChanges,
  type KeyStore,
  type ListPage,
  type Revocation,
  StorageUnavailableError,
} from "./store";

interface KeyRow {
  id: string;
  hash: string;
  start: string;
  name: string;
  owner_type: string;
  owner_id: string;
  scopes: string;
  resources: string | null;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  metadata: string | null;
  format: string | null;
  enabled: number;
  updated_at: number | null;
  allowed_ips: string | null;
  rotated_from: string | null;
}

const COLUMNS =
  "id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata, format, enabled, updated_at, allowed_ips, rotated_from";
const PLACEHOLDERS = COLUMNS.split(",")
  .map(() => "?")
  .join(", ");

interface EventRow {
  id: string;
  key_id: string;
  owner_type: string;
  owner_id: string;
  action: string;
  actor: string;
  at: number;
  changes: string;
  ip: string | null;
  user_agent: string | null;
}

const EVENT_COLUMNS = "id, key_id, owner_type, owner_id, action, actor, at, changes, ip, user_agent";

const jsonOrNull = (value: unknown) => (value === null ? null : JSON.stringify(value));

function fromEventRow(row: EventRow): AuditEvent {
  return {
    id: row.id,
    keyId: row.key_id,
    owner: { type: row.owner_type as OwnerType, id: row.owner_id },
    action: row.action as AuditAction,
    actor: row.actor,
    at: row.at,
    changes: JSON.parse(row.changes) as AuditEvent["changes"],
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

/** What an update may set, by record field: the column and how the value is stored. */
const UPDATABLE: { [F in keyof Required<KeyChanges>]: [column: string, toColumn: (value: KeyChanges[F]) => unknown] } =
  {
    name: ["name", (v) => v],
    metadata: ["metadata", jsonOrNull],
    enabled: ["enabled", (v) => (v ? 1 : 0)],
    expiresAt: ["expires_at", (v) => v],
    scopes: ["scopes", (v) => JSON.stringify(v)],
    resources: ["resources", jsonOrNull],
    allowedIps: ["allowed_ips", jsonOrNull],
  };

function fromRow(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    hash: row.hash,
    start: row.start,
    name: row.name,
    owner: { type: row.owner_type as OwnerType, id: row.owner_id },
    scopes: JSON.parse(row.scopes) as string[],
    resources: row.resources === null ? null : (JSON.parse(row.resources) as string[]),
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Record<string, unknown>),
    ...(row.format === null ? {} : { format: row.format as LegacyFormat }),
    enabled: row.enabled !== 0,
    updatedAt: row.updated_at,
    allowedIps: row.allowed_ips === null ? null : (JSON.parse(row.allowed_ips) as string[]),
    rotatedFrom: row.rotated_from,
  };
}

/** A D1 call slower than this is answered as unavailable (503) rather than holding the request. */
export const D1_TIMEOUT_MS = 5000;

async function attempt<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(run(), D1_TIMEOUT_MS, what);
  } catch (cause) {
    throw new StorageUnavailableError(`D1 ${what} failed`, { cause });
  }
}

export class D1KeyStore implements KeyStore {
  constructor(private readonly db: D1Database) {}

  insert(record: KeyRecord, event: AuditEvent): Promise<void> {
    return this.mutate("insert", [record.hash], [this.insertKey(record, ""), this.insertEvent(event)]).then(() => {});
  }

  async insertNew(records: readonly KeyRecord[], events: readonly AuditEvent[]): Promise<boolean[]> {
    // One batch is one transaction; a stored hash makes its row a no-op, never a duplicate, and then
    // its event (which follows it) is not written either.
    const results = await this.mutate(
      "import",
      records.map((r) => r.hash),
      records.flatMap((r, i) => [
        this.insertKey(r, " WHERE true ON CONFLICT (hash) DO NOTHING"),
        this.insertEvent(events[i]!),
      ]),
    );
    return records.map((_, i) => results[2 * i]?.meta.changes === 1);
  }

  findByHash(hash: string): Promise<KeyRecord | null> {
    return attempt("lookup", async () => {
      const row = await this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE hash = ?`).bind(hash).first<KeyRow>();
      return row ? fromRow(row) : null;
    });
  }

  findById(id: string): Promise<KeyRecord | null> {
    return attempt("lookup", async () => {
      const row = await this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`).bind(id).first<KeyRow>();
      return row ? fromRow(row) : null;
    });
  }

  list(page: ListPage): Promise<KeyRecord[]> {
    return attempt("list", async () => {
      const where: string[] = [];
      const params: (string | number)[] = [];
      where.push(`(${page.owners.map(() => "(owner_type = ? AND owner_id = ?)").join(" OR ")})`);
      for (const owner of page.owners) params.push(owner.type, owner.id);
      if (!page.includeRevoked) where.push("revoked_at IS NULL");
      if (page.after) {
        where.push("(created_at < ? OR (created_at = ? AND id < ?))");
        params.push(page.after.createdAt, page.after.createdAt, page.after.id);
      }
      params.push(page.limit);
      const { results } = await this.db
        .prepare(
          `SELECT ${COLUMNS} FROM api_keys WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`,
        )
        .bind(...params)
        .all<KeyRow>();
      return results.map(fromRow);
    });
  }

  async revoke(current: KeyRecord, at: number, event: AuditEvent): Promise<KeyRecord | null> {
    const results = await this.mutate(
      "revoke",
      [current.hash],
      [
        this.db
          .prepare("UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL")
          .bind(at, at, current.id),
        this.insertEvent(event),
        this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`).bind(current.id),
      ],
    );
    const row = results[2]?.results[0] as KeyRow | undefined;
    return row ? fromRow(row) : null;
  }

  update(current: KeyRecord, changes: KeyChanges, event: AuditEvent): Promise<boolean> {
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const field of Object.keys(UPDATABLE) as (keyof KeyChanges)[]) {
      if (changes[field] === undefined) continue;
      const [column, toColumn] = UPDATABLE[field] as [string, (value: unknown) => unknown];
      sets.push(`${column} = ?`);
      values.push(toColumn(changes[field]));
    }
    return this.changedKey(current, sets, values, event, []);
  }

  rotate(
    current: KeyRecord,
    expiresAt: number | null,
    replacement: KeyRecord,
    [rotated, created]: readonly [AuditEvent, AuditEvent],
  ): Promise<boolean> {
    // The replacement and both events land only if the old key's update did (each `changes() = 1`).
    return this.changedKey(current, ["expires_at = ?"], [expiresAt], rotated, [
      this.insertKey(replacement, " WHERE changes() = 1"),
      this.insertEvent(created),
    ]);
  }

  /**
   * One UPDATE of the key if it is unrevoked and unchanged since `current` was read, its event, and
   * any further statements, each landing only if the one before it changed a row.
   */
  private async changedKey(
    current: KeyRecord,
    sets: string[],
    values: unknown[],
    event: AuditEvent,
    more: D1PreparedStatement[],
  ): Promise<boolean> {
    const results = await this.mutate(
      "update",
      [current.hash],
      [
        this.db
          .prepare(
            `UPDATE api_keys SET ${[...sets, "updated_at = ?"].join(", ")} WHERE id = ? AND revoked_at IS NULL AND updated_at IS ?`,
          )
          .bind(...values, event.at, current.id, current.updatedAt),
        this.insertEvent(event),
        ...more,
      ],
    );
    return results.every((result) => result.meta.changes === 1);
  }

  revokedAfter(after: Revocation, limit: number): Promise<Revocation[]> {
    return attempt("revocation sync", async () => {
      const { results } = await this.db
        .prepare(
          "SELECT hash, revoked_at FROM api_keys WHERE revoked_at >= ? AND (revoked_at, hash) > (?, ?) ORDER BY revoked_at, hash LIMIT ?",
        )
        .bind(after.revokedAt, after.revokedAt, after.hash, limit)
        .all<{ hash: string; revoked_at: number }>();
      return results.map((r) => ({ hash: r.hash, revokedAt: r.revoked_at }));
    });
  }

  changedAfter(after: Change, limit: number): Promise<Change[]> {
    return attempt("change sync", async () => {
      const { results } = await this.db
        .prepare(
          "SELECT hash, updated_at FROM api_keys WHERE updated_at >= ? AND (updated_at, hash) > (?, ?) ORDER BY updated_at, hash LIMIT ?",
        )
        .bind(after.updatedAt, after.updatedAt, after.hash, limit)
        .all<{ hash: string; updated_at: number }>();
      return results.map((r) => ({ hash: r.hash, updatedAt: r.updated_at }));
    });
  }

  listEvents(page: EventPage): Promise<AuditEvent[]> {
    return attempt("event list", async () => {
      const where: string[] = [`(${page.owners.map(() => "(owner_type = ? AND owner_id = ?)").join(" OR ")})`];
      const params: (string | number)[] = page.owners.flatMap((owner) => [owner.type, owner.id]);
      if (page.keyId !== null) {
        where.push("key_id = ?");
        params.push(page.keyId);
      }
      if (page.action !== null) {
        where.push("action = ?");
        params.push(page.action);
      }
      if (page.since !== null) {
        where.push("at >= ?");
        params.push(page.since);
      }
      if (page.until !== null) {
        where.push("at < ?");
        params.push(page.until);
      }
      if (page.after) {
        where.push("(at < ? OR (at = ? AND id < ?))");
        params.push(page.after.at, page.after.at, page.after.id);
      }
      params.push(page.limit);
      const { results } = await this.db
        .prepare(
          `SELECT ${EVENT_COLUMNS} FROM key_events WHERE ${where.join(" AND ")} ORDER BY at DESC, id DESC LIMIT ?`,
        )
        .bind(...params)
        .all<EventRow>();
      return results.map(fromEventRow);
    });
  }

  purgeEvents(before: number, limit: number): Promise<number> {
    return attempt("event purge", async () => {
      const result = await this.db
        .prepare("DELETE FROM key_events WHERE id IN (SELECT id FROM key_events WHERE at < ? LIMIT ?)")
        .bind(before, limit)
        .run();
      return result.meta.changes;
    });
  }

  touchLastUsed(ids: readonly string[], at: number, minIntervalMs: number): Promise<void> {
    return attempt("last-used update", async () => {
      const list = ids.map(() => "?").join(", ");
      await this.db
        .prepare(
          `UPDATE api_keys SET last_used_at = ? WHERE id IN (${list}) AND (last_used_at IS NULL OR last_used_at <= ?)`,
        )
        .bind(at, ...ids, at - minIntervalMs)
        .run();
    });
  }

  /**
   * Every change of a key goes through here: its statements (the change and its audit event) run as
   * one D1 batch, one transaction, so a change never lands without its event or the reverse.
   */
  private async mutate(
    what: string,
    hashes: readonly string[],
    statements: D1PreparedStatement[],
  ): Promise<D1Result[]> {
    // Change feed (at merge): append the key_changes rows for `hashes` to `statements` here.
    return attempt(what, () => this.db.batch(statements));
  }

  private insertKey(r: KeyRecord, condition: string): D1PreparedStatement {
    return this.db
      .prepare(`INSERT INTO api_keys (${COLUMNS}) SELECT ${PLACEHOLDERS}${condition}`)
      .bind(
        r.id,
        r.hash,
        r.start,
        r.name,
        r.owner.type,
        r.owner.id,
        JSON.stringify(r.scopes),
        jsonOrNull(r.resources),
        r.createdBy,
        r.createdAt,
        r.expiresAt,
        r.revokedAt,
        r.lastUsedAt,
        jsonOrNull(r.metadata),
        r.format ?? null,
        r.enabled ? 1 : 0,
        r.updatedAt,
        jsonOrNull(r.allowedIps),
        r.rotatedFrom,
      );
  }

  /** The event, written only if the statement before it in the batch changed a row. */
  private insertEvent(e: AuditEvent): D1PreparedStatement {
    return this.db
      .prepare(`INSERT INTO key_events (${EVENT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1`)
      .bind(
        e.id,
        e.keyId,
        e.owner.type,
        e.owner.id,
        e.action,
        e.actor,
        e.at,
        JSON.stringify(e.changes),
        e.ip,
        e.userAgent,
      );
  }
}
