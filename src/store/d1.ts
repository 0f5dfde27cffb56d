/**
 * KeyStore on D1, the store of record. Rows hold only the key's SHA-256 (`hash`, unique index),
 * never the key. Times are epoch milliseconds; JSON columns hold scopes, resources and metadata.
 * Every D1 failure surfaces as StorageUnavailableError, with the cause kept for the log.
 */
import type { LegacyFormat } from "../keys/legacy";
import type { KeyLimits } from "../keys/usage";
import type { KeyRecord, OwnerType } from "../model";
import { withTimeout } from "./timeout";
import { type KeyStore, type ListPage, type Revocation, StorageUnavailableError } from "./store";

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
  limits: string | null;
  usage_id: string | null;
}

const COLUMNS =
  "id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata, format, limits, usage_id";

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
    ...(row.limits === null ? {} : { limits: JSON.parse(row.limits) as KeyLimits }),
    ...(row.usage_id === null ? {} : { usageId: row.usage_id }),
  };
}

const INSERT = `INSERT INTO api_keys (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

function values(r: KeyRecord): (string | number | null)[] {
  return [
    r.id,
    r.hash,
    r.start,
    r.name,
    r.owner.type,
    r.owner.id,
    JSON.stringify(r.scopes),
    r.resources === null ? null : JSON.stringify(r.resources),
    r.createdBy,
    r.createdAt,
    r.expiresAt,
    r.revokedAt,
    r.lastUsedAt,
    r.metadata === null ? null : JSON.stringify(r.metadata),
    r.format ?? null,
    r.limits ? JSON.stringify(r.limits) : null,
    r.usageId ?? null,
  ];
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

  insert(r: KeyRecord): Promise<void> {
    return attempt("insert", async () => {
      await this.db
        .prepare(INSERT)
        .bind(...values(r))
        .run();
    });
  }

  insertNew(records: readonly KeyRecord[]): Promise<boolean[]> {
    return attempt("import", async () => {
      // One batch is one transaction; a stored hash makes its row a no-op, never a duplicate.
      const statement = this.db.prepare(`${INSERT} ON CONFLICT (hash) DO NOTHING RETURNING id`);
      const results = await this.db.batch(records.map((r) => statement.bind(...values(r))));
      return results.map((result) => result.results.length === 1);
    });
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

  revoke(id: string, at: number): Promise<KeyRecord | null> {
    return attempt("revoke", async () => {
      const row = await this.db
        .prepare(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ${COLUMNS}`)
        .bind(at, id)
        .first<KeyRow>();
      return row ? fromRow(row) : null;
    });
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
}
