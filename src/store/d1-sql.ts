/** The SQL every D1 query shares: liveness, lineage and reach, write guards, the audit event and key inserts, and `attempt` (timeout, errors). */
import type { D1Queries } from "./d1-session";
import { type AuditEvent, type KeyRecord, mintingKeyId } from "../model";
import { COLUMNS, EVENT_COLUMNS, PLACEHOLDERS, values } from "./d1-rows";
import { withTimeout } from "./timeout";
import {
  ConcurrentChangeError,
  IdempotencyConflict,
  type Reach,
  type ReachGuard,
  StorageMisconfiguredError,
  StorageUnavailableError,
} from "./store";

/** The feed position a read is current as of, read in the same statement as the read. */
export const FEED_HEAD = "(SELECT COALESCE(MAX(seq), 0) FROM key_changes)";
/** Live at ?2 (epoch ms): not revoked, not expired, not disabled. */
export const LIVE = "revoked_at IS NULL AND enabled = 1 AND (expires_at IS NULL OR expires_at > ?2)";

/** The lineage of the keys `roots` selects: themselves, the keys they made (parent_id), and those made at their request (created_by). */
const lineageOf = (roots: string) =>
  `WITH RECURSIVE tree(id) AS (${roots} UNION SELECT k.id FROM api_keys k JOIN tree ON k.parent_id = tree.id UNION SELECT k.id FROM api_keys k JOIN tree ON k.created_by = 'key:' || tree.id) `;
/** The unrevoked keys sharing the usage counters ?1. */
const CHAIN = "(usage_id = ?1 OR id = ?1) AND revoked_at IS NULL";
export const TREES: Record<Exclude<Reach, "chain">, string> = {
  tree: lineageOf("SELECT ?1"),
  "chain-lineage": lineageOf(`SELECT id FROM api_keys WHERE ${CHAIN}`),
};

/** The unrevoked rows a write reaches from ?1, as `columns`, ordered by id (store.ts, Reach). */
export function reachedRows(reach: Reach, columns: string): string {
  return reach === "chain"
    ? `SELECT ${columns} FROM api_keys WHERE ${CHAIN} ORDER BY id`
    : `${TREES[reach]}SELECT ${columns} FROM api_keys WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL ORDER BY id`;
}

/** Those rows' (id, updated_at), as one JSON text: any change of any of them, or a row more or less, changes it. */
export const fingerprintOf = (reach: Reach) =>
  `SELECT json_group_array(json_array(id, updated_at)) FROM (${reachedRows(reach, "id, updated_at")})`;

/** A UUID v4 made by SQLite, for audit events written by a statement that covers many keys. */
export const NEW_UUID = `lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))`;

/** A D1 call slower than this is answered as unavailable (503) rather than holding the request. */
export const D1_TIMEOUT_MS = 5000;

/** SQLite's words for a schema this build does not match: migrations were not applied. */
export const SCHEMA_MISMATCH = /no such (?:table|column)/i;

export async function attempt<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(run(), D1_TIMEOUT_MS, what);
  } catch (cause) {
    if (cause instanceof IdempotencyConflict || cause instanceof StorageMisconfiguredError) throw cause;
    if (cause instanceof Error && /write_guard:/.test(cause.message)) {
      throw new ConcurrentChangeError(`D1 ${what}: the rows it depends on changed`, { cause });
    }
    if (cause instanceof Error && SCHEMA_MISMATCH.test(cause.message)) {
      throw new StorageMisconfiguredError(
        `D1 ${what} failed: the database schema is behind this build (apply the migrations: wrangler d1 migrations apply DB --remote)`,
        { cause },
      );
    }
    throw new StorageUnavailableError(`D1 ${what} failed`, { cause });
  }
}

/**
 * `attempt` without its classification, for the stores that answer every failure as an outage (usage
 * counts, owners' limits, webhooks): bounded by D1_TIMEOUT_MS, and any failure, a schema mismatch
 * included, is StorageUnavailableError.
 */
export async function attemptUnclassified<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(run(), D1_TIMEOUT_MS, what);
  } catch (cause) {
    throw new StorageUnavailableError(`D1 ${what} failed`, { cause });
  }
}

/**
 * A page newest first by (`time`, id), the order of every list: the rows `select` reads that meet every
 * condition of `where` (bound to `params`) and come after the position `after`, at most `limit`.
 */
export async function newestFirst<Row>(
  db: D1Queries,
  page: {
    readonly select: string;
    readonly time: string;
    readonly where: readonly string[];
    readonly params: readonly unknown[];
    readonly after: { readonly time: number; readonly id: string } | null;
    readonly limit: number;
  },
): Promise<Row[]> {
  const { select, time, after } = page;
  const where = after ? [...page.where, `(${time} < ? OR (${time} = ? AND id < ?))`] : page.where;
  const { results } = await db
    .prepare(
      `${select}${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY ${time} DESC, id DESC LIMIT ?`,
    )
    .bind(...page.params, ...(after ? [after.time, after.time, after.id] : []), page.limit)
    .all<Row>();
  return results;
}

/** The statement that aborts its batch (write_guard, migrations/0007_lineage.sql) when the pinned rows changed. */
export function guardStatement(db: D1Queries, guard: ReachGuard): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO write_guard (refusal) SELECT CASE WHEN (${fingerprintOf(guard.reach)}) IS ?2 THEN NULL ELSE 'changed' END`,
    )
    .bind(guard.root, guard.fingerprint);
}

export function insertKey(db: D1Queries, r: KeyRecord, condition: string): D1PreparedStatement {
  return db.prepare(`INSERT INTO api_keys (${COLUMNS}) SELECT ${PLACEHOLDERS}${condition}`).bind(...values(r));
}

/** The event, written only if the statement before it in the batch changed a row. */
export function insertEvent(db: D1Queries, e: AuditEvent): D1PreparedStatement {
  return db
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

/** Whether the key that asks for `r` is live at `now` (true when a person or service asks). */
export async function mintingKeyLive(db: D1Queries, r: KeyRecord, now: number): Promise<boolean> {
  const minter = mintingKeyId(r);
  if (minter === null) return true;
  return (await db.prepare(`SELECT 1 FROM api_keys WHERE id = ?1 AND ${LIVE}`).bind(minter, now).first()) !== null;
}
