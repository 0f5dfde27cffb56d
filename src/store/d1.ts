/**
 * KeyStore on D1, the store of record. Rows hold only the key's SHA-256 (`hash`, unique index),
 * never the key. Times are epoch milliseconds; JSON columns hold scopes, resources and metadata.
 * Every D1 failure surfaces as StorageUnavailableError, with the cause kept for the log.
 */
import type { LegacyFormat } from "../keys/legacy";
import type { KeyRecord, OwnerType } from "../model";
import { withTimeout } from "./timeout";
import {
  type IdempotencyClaim,
  IdempotencyConflict,
  type KeyStore,
  type ListPage,
  type Revocation,
  type StoreMaintenance,
  StorageMisconfiguredError,
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
}

const COLUMNS =
  "id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata, format";

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
  };
}

const INSERT = `INSERT INTO api_keys (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

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
  ];
}

/** A D1 call slower than this is answered as unavailable (503) rather than holding the request. */
export const D1_TIMEOUT_MS = 5000;

/** SQLite's words for a schema this build does not match: migrations were not applied. */
const SCHEMA_MISMATCH = /no such (?:table|column)/i;

async function attempt<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(run(), D1_TIMEOUT_MS, what);
  } catch (cause) {
    if (cause instanceof IdempotencyConflict || cause instanceof StorageMisconfiguredError) throw cause;
    if (cause instanceof Error && SCHEMA_MISMATCH.test(cause.message)) {
      throw new StorageMisconfiguredError(
        `D1 ${what} failed: the database schema is behind this build (apply the migrations: wrangler d1 migrations apply DB --remote)`,
        { cause },
      );
    }
    throw new StorageUnavailableError(`D1 ${what} failed`, { cause });
  }
}

export class D1KeyStore implements KeyStore, StoreMaintenance {
  constructor(private readonly db: D1Database) {}

  insert(r: KeyRecord, claim?: IdempotencyClaim): Promise<void> {
    return attempt("insert", async () => {
      const insertKey = this.db.prepare(INSERT).bind(...values(r));
      if (!claim) {
        await insertKey.run();
        return;
      }
      // One batch is one transaction: an expired claim is dropped, the claim is made (the primary key
      // refuses a second one, failing the whole batch) and the key stored, or nothing is.
      try {
        await this.db.batch([
          this.db
            .prepare("DELETE FROM idempotency_keys WHERE caller = ? AND key_hash = ? AND created_at < ?")
            .bind(claim.caller, claim.keyHash, claim.expiredBefore),
          this.db
            .prepare(
              "INSERT INTO idempotency_keys (caller, key_hash, request_hash, key_id, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(claim.caller, claim.keyHash, claim.requestHash, r.id, r.createdAt),
          insertKey,
        ]);
      } catch (error) {
        const existing = await this.db
          .prepare("SELECT key_id, request_hash FROM idempotency_keys WHERE caller = ? AND key_hash = ?")
          .bind(claim.caller, claim.keyHash)
          .first<{ key_id: string; request_hash: string }>();
        if (existing) throw new IdempotencyConflict(existing.key_id, existing.request_hash);
        throw error;
      }
    });
  }

  /**
   * Resolves when D1 answers and `latestMigration` is the newest applied (d1_migrations, written by
   * `wrangler d1 migrations apply`); throws StorageMisconfiguredError when it is not applied.
   */
  checkSchema(latestMigration: string): Promise<void> {
    return attempt("readiness check", async () => {
      let applied: { name: string } | null;
      try {
        applied = await this.db
          .prepare("SELECT name FROM d1_migrations ORDER BY id DESC LIMIT 1")
          .first<{ name: string }>();
      } catch (error) {
        if (!(error instanceof Error && /no such table/i.test(error.message))) throw error;
        applied = null;
      }
      if (applied?.name !== latestMigration) {
        throw new StorageMisconfiguredError(
          `migration ${latestMigration} is not applied (latest applied: ${applied?.name ?? "none"})`,
        );
      }
    });
  }

  /**
   * Deletes up to `limit` keys revoked or expired before `before`, and Idempotency-Key records made
   * before `idempotencyBefore`; the number of keys deleted.
   */
  purge(before: number, idempotencyBefore: number, limit: number): Promise<number> {
    return attempt("purge", async () => {
      const [keys] = await this.db.batch([
        this.db
          .prepare(
            "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys WHERE revoked_at < ?1 OR expires_at < ?1 LIMIT ?2)",
          )
          .bind(before, limit),
        this.db
          .prepare(
            "DELETE FROM idempotency_keys WHERE (caller, key_hash) IN (SELECT caller, key_hash FROM idempotency_keys WHERE created_at < ? LIMIT ?)",
          )
          .bind(idempotencyBefore, limit),
      ]);
      return keys?.meta.changes ?? 0;
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
