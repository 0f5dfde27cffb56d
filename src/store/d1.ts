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
  type InsertLimits,
  type InsertRefusal,
  type KeyChange,
  type KeyStore,
  type ListPage,
  type StampedRecord,
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
  parent_id: string | null;
}

const COLUMNS =
  "id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata, format, parent_id";

/** The feed position a read is current as of, read in the same statement as the read. */
const FEED_HEAD = "(SELECT COALESCE(MAX(seq), 0) FROM key_changes)";
/** Live at ?2 (epoch ms): not revoked, not expired. */
const LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)";

interface ChangeRow {
  seq: number;
  hash: string;
  key_id: string;
  kind: KeyChange["kind"];
}

const fromChangeRow = (row: ChangeRow): KeyChange => ({
  seq: row.seq,
  hash: row.hash,
  keyId: row.key_id,
  kind: row.kind,
});

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
    parentId: row.parent_id,
  };
}

const INSERT = `INSERT INTO api_keys (${COLUMNS}) VALUES (${COLUMNS.split(",")
  .map(() => "?")
  .join(", ")})`;
/** The conditional insert binds ?1 (parent id) and ?2 (now) first, then the row's values, then the quota. */
const VALUE_PARAMS_FROM_3 = COLUMNS.split(",")
  .map((_, i) => `?${i + 3}`)
  .join(", ");
const MAX_KEYS_PARAM = COLUMNS.split(",").length + 3;

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
    r.parentId,
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

  /**
   * One statement: INSERT ... SELECT ... WHERE <parent live> AND <owner under quota>, so neither a
   * revocation of the parent nor concurrent creates can slip between the check and the write (D1 runs
   * one statement at a time). The quota count stops at the limit, so it reads at most that many index
   * entries (api_keys_owner_live). With an Idempotency-Key claim, the claim is written in the same
   * batch (one transaction) right after, only if the key was: a second claim fails on the primary key
   * and takes its key with it.
   */
  insert(
    r: KeyRecord,
    limits: InsertLimits,
    claim?: IdempotencyClaim,
  ): Promise<{ seq: number } | { refused: InsertRefusal }> {
    return attempt("insert", async () => {
      const insertKey = this.db
        .prepare(
          `INSERT INTO api_keys (${COLUMNS})
           SELECT ${VALUE_PARAMS_FROM_3}
           WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = ?1 AND ${LIVE}))
             AND (SELECT COUNT(*) FROM (SELECT 1 FROM api_keys WHERE owner_type = ?7 AND owner_id = ?8 AND ${LIVE} LIMIT ?${MAX_KEYS_PARAM})) < ?${MAX_KEYS_PARAM}
           RETURNING ${FEED_HEAD} AS seq`,
        )
        .bind(r.parentId, limits.now, ...values(r), limits.maxKeysPerOwner);
      let inserted: { seq: number } | null;
      if (!claim) {
        inserted = await insertKey.first<{ seq: number }>();
      } else {
        try {
          const [, stored] = await this.db.batch<{ seq: number }>([
            this.db
              .prepare("DELETE FROM idempotency_keys WHERE caller = ? AND key_hash = ? AND created_at < ?")
              .bind(claim.caller, claim.keyHash, claim.expiredBefore),
            insertKey,
            this.db
              .prepare(
                "INSERT INTO idempotency_keys (caller, key_hash, request_hash, key_id, created_at) SELECT ?, ?, ?, ?, ? WHERE changes() = 1",
              )
              .bind(claim.caller, claim.keyHash, claim.requestHash, r.id, r.createdAt),
          ]);
          inserted = stored?.results[0] ?? null;
        } catch (error) {
          await this.throwIfClaimed(claim);
          throw error;
        }
        // Refused: a retry of a request that did create its key is still a replay, not a refusal.
        if (!inserted) await this.throwIfClaimed(claim);
      }
      if (inserted) return { seq: inserted.seq };
      // Nothing stored: say why (the parent cannot come back to life, so this answer is stable).
      const parentLive =
        r.parentId === null ||
        (await this.db
          .prepare(`SELECT 1 FROM api_keys WHERE id = ?1 AND ${LIVE}`)
          .bind(r.parentId, limits.now)
          .first()) !== null;
      return { refused: parentLive ? "owner_quota" : "parent_not_live" };
    });
  }

  /** Throws IdempotencyConflict when `claim`'s Idempotency-Key is already claimed (and not expired). */
  private async throwIfClaimed(claim: IdempotencyClaim): Promise<void> {
    const existing = await this.db
      .prepare(
        "SELECT key_id, request_hash FROM idempotency_keys WHERE caller = ? AND key_hash = ? AND created_at >= ?",
      )
      .bind(claim.caller, claim.keyHash, claim.expiredBefore)
      .first<{ key_id: string; request_hash: string }>();
    if (existing) throw new IdempotencyConflict(existing.key_id, existing.request_hash);
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

  findByHash(hash: string): Promise<StampedRecord | null> {
    return attempt("lookup", async () => {
      const row = await this.db
        .prepare(`SELECT ${COLUMNS}, ${FEED_HEAD} AS feed_seq FROM api_keys WHERE hash = ?`)
        .bind(hash)
        .first<KeyRow & { feed_seq: number }>();
      return row ? { record: fromRow(row), seq: row.feed_seq } : null;
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
      if (page.createdBy !== undefined) {
        where.push("created_by = ?");
        params.push(page.createdBy);
      }
      if (page.ownerType !== undefined) {
        where.push("owner_type = ?");
        params.push(page.ownerType);
      }
      switch (page.status) {
        case "active":
          where.push("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)");
          params.push(page.now);
          break;
        case "revoked":
          where.push("revoked_at IS NOT NULL");
          break;
        case "expired":
          where.push("revoked_at IS NULL AND expires_at <= ?");
          params.push(page.now);
          break;
        case undefined:
          if (!page.includeRevoked) where.push("revoked_at IS NULL");
      }
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

  revoke(id: string, at: number, cascade: boolean): Promise<KeyRecord[]> {
    return attempt("revoke", async () => {
      // One statement, so the key and its descendants are revoked together or not at all; the
      // trigger api_keys_feed_revoked appends each newly revoked key to the feed in it.
      const set = `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2)`;
      const sql = cascade
        ? `WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN tree ON k.parent_id = tree.id)
           ${set} WHERE id IN (SELECT id FROM tree) RETURNING ${COLUMNS}`
        : `${set} WHERE id = ?1 RETURNING ${COLUMNS}`;
      const { results } = await this.db.prepare(sql).bind(id, at).all<KeyRow>();
      const records = results.map(fromRow);
      return [...records.filter((r) => r.id === id), ...records.filter((r) => r.id !== id)];
    });
  }

  changesAfter(seq: number, limit: number): Promise<KeyChange[]> {
    return attempt("change feed", async () => {
      const { results } = await this.db
        .prepare("SELECT seq, hash, key_id, kind FROM key_changes WHERE seq > ? ORDER BY seq LIMIT ?")
        .bind(seq, limit)
        .all<ChangeRow>();
      return results.map(fromChangeRow);
    });
  }

  latestChanges(limit: number): Promise<KeyChange[]> {
    return attempt("change feed", async () => {
      const { results } = await this.db
        .prepare("SELECT seq, hash, key_id, kind FROM key_changes ORDER BY seq DESC LIMIT ?")
        .bind(limit)
        .all<ChangeRow>();
      return results.map(fromChangeRow).reverse();
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
