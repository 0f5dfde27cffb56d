/**
 * KeyStore on D1, the store of record. Rows hold only the key's SHA-256 (`hash`, unique index),
 * never the key. Times are epoch milliseconds; JSON columns hold scopes, resources and metadata.
 * Every D1 failure surfaces as StorageUnavailableError, with the cause kept for the log.
 */
import type { KeyLimits } from "../keys/limit-arithmetic";
import { type AuditAction, type AuditEvent, type KeyRecord, type OwnerType, mintingKeyId } from "../model";
import { withTimeout } from "./timeout";
import { formatColumns, formatFromColumns } from "./legacy-columns";
import {
  type EventPage,
  type IdempotencyClaim,
  IdempotencyConflict,
  type InsertLimits,
  type InsertRefusal,
  type KeyChange,
  type KeyChanges,
  type KeyStore,
  type ListPage,
  type Reach,
  type ReachGuard,
  ConcurrentChangeError,
  type RevocationOrigin,
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
  enabled: number;
  updated_at: number | null;
  allowed_ips: string | null;
  rotated_from: string | null;
  limits: string | null;
  usage_id: string | null;
  legacy_format: string | null;
  legacy_hash: string | null;
}

const COLUMNS =
  "id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata, format, parent_id, enabled, updated_at, allowed_ips, rotated_from, limits, usage_id, legacy_format, legacy_hash";

/** The feed position a read is current as of, read in the same statement as the read. */
const FEED_HEAD = "(SELECT COALESCE(MAX(seq), 0) FROM key_changes)";
/** Live at ?2 (epoch ms): not revoked, not expired, not disabled. */
const LIVE = "revoked_at IS NULL AND enabled = 1 AND (expires_at IS NULL OR expires_at > ?2)";

/** A key's lineage from ?1: itself, the keys it made (parent_id), and those made at its request (created_by). */
const TREE =
  "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN tree ON k.parent_id = tree.id UNION SELECT k.id FROM api_keys k JOIN tree ON k.created_by = 'key:' || tree.id) ";

/** The unrevoked rows a write reaches from ?1, as `columns`, ordered by id (store.ts, Reach). */
function reachedRows(reach: Reach, columns: string): string {
  return reach === "chain"
    ? `SELECT ${columns} FROM api_keys WHERE (usage_id = ?1 OR id = ?1) AND revoked_at IS NULL ORDER BY id`
    : `${TREE}SELECT ${columns} FROM api_keys WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL ORDER BY id`;
}

/** Those rows' (id, updated_at), as one JSON text: any change of any of them, or a row more or less, changes it. */
const fingerprintOf = (reach: Reach) =>
  `SELECT json_group_array(json_array(id, updated_at)) FROM (${reachedRows(reach, "id, updated_at")})`;

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
    limits: ["limits", jsonOrNull],
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
    ...(row.format === null ? {} : { format: formatFromColumns(row.format, row.legacy_format) }),
    ...(row.legacy_hash === null ? {} : { legacyHash: row.legacy_hash }),
    parentId: row.parent_id,
    enabled: row.enabled !== 0,
    updatedAt: row.updated_at,
    allowedIps: row.allowed_ips === null ? null : (JSON.parse(row.allowed_ips) as string[]),
    rotatedFrom: row.rotated_from,
    ...(row.limits === null ? {} : { limits: JSON.parse(row.limits) as KeyLimits }),
    ...(row.usage_id === null ? {} : { usageId: row.usage_id }),
  };
}

const PLACEHOLDERS = COLUMNS.split(",")
  .map(() => "?")
  .join(", ");
/** A UUID v4 made by SQLite, for audit events written by a statement that covers many keys. */
const NEW_UUID = `lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))`;
/** The conditional insert binds ?1 (parent id) and ?2 (now) first, then the row's values, then the quota. */
const VALUE_PARAMS_FROM_3 = COLUMNS.split(",")
  .map((_, i) => `?${i + 3}`)
  .join(", ");
const MAX_KEYS_PARAM = COLUMNS.split(",").length + 3;
/** The import's insert binds its six condition parameters first, then the row's values. */
const VALUE_PARAMS_FROM_7 = COLUMNS.split(",")
  .map((_, i) => `?${i + 7}`)
  .join(", ");

function values(r: KeyRecord): (string | number | null)[] {
  return [
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
    formatColumns(r.format)[0],
    r.parentId,
    r.enabled ? 1 : 0,
    r.updatedAt,
    jsonOrNull(r.allowedIps),
    r.rotatedFrom,
    r.limits ? JSON.stringify(r.limits) : null,
    r.usageId ?? null,
    formatColumns(r.format)[1],
    r.legacyHash ?? null,
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

export class D1KeyStore implements KeyStore, StoreMaintenance {
  constructor(private readonly db: D1Database) {}

  /**
   * One statement: INSERT ... SELECT ... WHERE <parent live> AND <owner under quota>, so neither a
   * revocation of the parent nor concurrent creates can slip between the check and the write (D1 runs
   * one statement at a time). The quota count stops at the limit, so it reads at most that many index
   * entries (api_keys_owner_live). With an Idempotency-Key claim, the claim is written in the same
   * batch (one transaction) right after, only if the key was: a second claim fails on the primary key
   * and takes its key with it. The key's `created` audit event is in the same batch.
   */
  insert(
    r: KeyRecord,
    event: AuditEvent,
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
        .bind(mintingKeyId(r), limits.now, ...values(r), limits.maxKeysPerOwner);
      // The event follows the key and the claim follows the event, each only if the statement before
      // it changed a row (`changes() = 1`), so all land together or none does.
      const statements = [insertKey, this.insertEvent(event)];
      if (claim) {
        statements.unshift(
          this.db
            .prepare("DELETE FROM idempotency_keys WHERE caller = ? AND key_hash = ? AND created_at < ?")
            .bind(claim.caller, claim.keyHash, claim.expiredBefore),
        );
        statements.push(
          this.db
            .prepare(
              "INSERT INTO idempotency_keys (caller, key_hash, request_hash, key_id, created_at) SELECT ?, ?, ?, ?, ? WHERE changes() = 1",
            )
            .bind(claim.caller, claim.keyHash, claim.requestHash, r.id, r.createdAt),
        );
      }
      let inserted: { seq: number } | null;
      try {
        const results = await this.db.batch<{ seq: number }>(statements);
        inserted = results[claim ? 1 : 0]?.results[0] ?? null;
      } catch (error) {
        if (claim) await this.throwIfClaimed(claim);
        throw error;
      }
      // Refused: a retry of a request that did create its key is still a replay, not a refusal.
      if (!inserted && claim) await this.throwIfClaimed(claim);
      if (inserted) return { seq: inserted.seq };
      // Nothing stored: say why (the parent cannot come back to life, so this answer is stable).
      return { refused: (await this.mintingKeyLive(r, limits.now)) ? "owner_quota" : "parent_not_live" };
    });
  }

  /** Whether the key that asks for `r` is live at `now` (true when a person or service asks). */
  private async mintingKeyLive(r: KeyRecord, now: number): Promise<boolean> {
    const minter = mintingKeyId(r);
    if (minter === null) return true;
    return (
      (await this.db.prepare(`SELECT 1 FROM api_keys WHERE id = ?1 AND ${LIVE}`).bind(minter, now).first()) !== null
    );
  }

  reach(reach: Reach, root: string): Promise<{ records: KeyRecord[]; guard: ReachGuard }> {
    return attempt("lineage read", async () => {
      // One batch (one transaction): the rows and their fingerprint are of the same moment.
      const [rows, print] = await this.db.batch([
        this.db.prepare(reachedRows(reach, COLUMNS)).bind(root),
        this.db.prepare(`SELECT (${fingerprintOf(reach)}) AS fingerprint`).bind(root),
      ]);
      const fingerprint = (print?.results[0] as { fingerprint: string } | undefined)?.fingerprint ?? "[]";
      return { records: ((rows?.results ?? []) as KeyRow[]).map(fromRow), guard: { reach, root, fingerprint } };
    });
  }

  /** The statement that aborts its batch (write_guard, migrations/0007_lineage.sql) when the pinned rows changed. */
  private guardStatement(guard: ReachGuard): D1PreparedStatement {
    return this.db
      .prepare(
        `INSERT INTO write_guard (refusal) SELECT CASE WHEN (${fingerprintOf(guard.reach)}) IS ?2 THEN NULL ELSE 'changed' END`,
      )
      .bind(guard.root, guard.fingerprint);
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
   * Deletes up to `limit` keys revoked or expired before `before` (with their usage counts), and
   * Idempotency-Key records made before `idempotencyBefore`; the number of keys deleted.
   */
  purge(before: number, idempotencyBefore: number, limit: number): Promise<number> {
    return attempt("purge", async () => {
      const [, keys] = await this.db.batch([
        // The same keys as the DELETE after it (one transaction): their usage counts go with them.
        this.db
          .prepare(
            "DELETE FROM key_usage WHERE key_id IN (SELECT id FROM api_keys WHERE revoked_at < ?1 OR expires_at < ?1 LIMIT ?2)",
          )
          .bind(before, limit),
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

  async insertNew(
    records: readonly KeyRecord[],
    events: readonly AuditEvent[],
    limits: InsertLimits,
  ): Promise<{ inserted: boolean[] } | { refused: InsertRefusal }> {
    const minter = records[0] ? mintingKeyId(records[0]) : null;
    const owner = records[0]?.owner;
    // The same two conditions for every row, read in the same transaction: the key asking is live, and
    // the owner's live keys (those of this batch left out, so the verdict cannot change mid-batch) plus
    // the batch's size are within the quota. So all rows are refused, or none.
    const ids = JSON.stringify(records.map((r) => r.id));
    const params = [
      minter,
      limits.now,
      owner?.type ?? "",
      owner?.id ?? "",
      ids,
      limits.maxKeysPerOwner - records.length,
    ];
    const live = `(?1 IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = ?1 AND ${LIVE}))`;
    const quota = `(SELECT COUNT(*) FROM (SELECT 1 FROM api_keys WHERE owner_type = ?3 AND owner_id = ?4 AND ${LIVE} AND id NOT IN (SELECT value FROM json_each(?5)) LIMIT MAX(?6 + 1, 0))) <= ?6`;
    // One batch is one transaction; a stored hash makes its row a no-op, never a duplicate, and then
    // its event (which follows it) is not written either.
    const results = await attempt("import", () =>
      this.db.batch([
        this.db.prepare(`SELECT ${live} AS live, ${quota} AS room`).bind(...params),
        ...records.flatMap((r, i) => [
          this.db
            .prepare(
              `INSERT INTO api_keys (${COLUMNS}) SELECT ${VALUE_PARAMS_FROM_7} WHERE ${live} AND ${quota} ON CONFLICT (hash) DO NOTHING`,
            )
            .bind(...params, ...values(r)),
          this.insertEvent(events[i]!),
        ]),
      ]),
    );
    const verdict = results[0]?.results[0] as { live: number; room: number } | undefined;
    if (!verdict?.live) return { refused: "parent_not_live" };
    if (!verdict.room) return { refused: "owner_quota" };
    return { inserted: records.map((_, i) => results[1 + 2 * i]?.meta.changes === 1) };
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

  replacementOf(id: string): Promise<string | null> {
    return attempt("lookup", async () => {
      const row = await this.db
        .prepare("SELECT id FROM api_keys WHERE rotated_from = ? LIMIT 1")
        .bind(id)
        .first<{ id: string }>();
      return row?.id ?? null;
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

  revoke(id: string, at: number, cascade: boolean, origin: RevocationOrigin, guard?: ReachGuard): Promise<KeyRecord[]> {
    return attempt("revoke", async () => {
      // One batch (one transaction): first a `revoked` event for each key about to be newly revoked,
      // then one UPDATE, so the key and its descendants are revoked together or not at all; the
      // trigger api_keys_feed_revoked appends each newly revoked key to the feed in it.
      const tree = cascade ? TREE : "";
      const which = cascade ? "id IN (SELECT id FROM tree)" : "id = ?1";
      const changes = JSON.stringify({ revoked_at: { old: null, new: new Date(at).toISOString() } });
      const guarded = guard ? [this.guardStatement(guard)] : [];
      const results = await this.db.batch<KeyRow>([
        ...guarded,
        this.db
          .prepare(
            `${tree}INSERT INTO key_events (${EVENT_COLUMNS})
             SELECT ${NEW_UUID}, id, owner_type, owner_id, 'revoked', ?3, ?2, ?4, ?5, ?6
             FROM api_keys WHERE ${which} AND revoked_at IS NULL`,
          )
          .bind(id, at, origin.actor, changes, origin.ip, origin.userAgent),
        this.db
          .prepare(
            `${tree}UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2),
               updated_at = CASE WHEN revoked_at IS NULL THEN ?2 ELSE updated_at END
             WHERE ${which} RETURNING ${COLUMNS}`,
          )
          .bind(id, at),
      ]);
      const records = (results.at(-1)?.results ?? []).map(fromRow);
      return [...records.filter((r) => r.id === id), ...records.filter((r) => r.id !== id)];
    });
  }

  update(
    current: KeyRecord,
    changes: KeyChanges,
    event: AuditEvent,
    guards: readonly ReachGuard[] = [],
  ): Promise<number | null> {
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const field of Object.keys(UPDATABLE) as (keyof KeyChanges)[]) {
      if (changes[field] === undefined) continue;
      const [column, toColumn] = UPDATABLE[field] as [string, (value: unknown) => unknown];
      sets.push(`${column} = ?`);
      values.push(toColumn(changes[field]));
    }
    const chain = changes.limits === undefined ? [] : this.chainLimits(current, changes.limits, event);
    return this.changedKey(current, sets, values, event, [], [...guards.map((g) => this.guardStatement(g)), ...chain]);
  }

  /**
   * The keys sharing `current`'s usage counters (its rotations and the keys made by a key with limits:
   * usage_id, or the chain's first key) hold the same limits, so a change of one is a change of all:
   * statements that give every other live key of the chain `limits`, each with its own audit event,
   * landing (first in the batch) only if `current` is still as it was read.
   */
  private chainLimits(current: KeyRecord, limits: KeyChanges["limits"], event: AuditEvent): D1PreparedStatement[] {
    const chain = current.usageId ?? current.id;
    // ?1 chain, ?2 the key itself, ?3 its updated_at as read.
    const others =
      "(usage_id = ?1 OR id = ?1) AND id != ?2 AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM api_keys WHERE id = ?2 AND revoked_at IS NULL AND updated_at IS ?3)";
    return [
      this.db
        .prepare(
          `INSERT INTO key_events (${EVENT_COLUMNS})
           SELECT ${NEW_UUID}, id, owner_type, owner_id, ?4, ?5, ?6, ?7, ?8, ?9 FROM api_keys WHERE ${others}`,
        )
        .bind(
          chain,
          current.id,
          current.updatedAt,
          event.action,
          event.actor,
          event.at,
          JSON.stringify(event.changes),
          event.ip,
          event.userAgent,
        ),
      this.db
        .prepare(`UPDATE api_keys SET limits = ?4, updated_at = ?5 WHERE ${others}`)
        .bind(chain, current.id, current.updatedAt, jsonOrNull(limits ?? null), event.at),
    ];
  }

  async rotate(
    current: KeyRecord,
    expiresAt: number | null,
    replacement: KeyRecord,
    [rotated, created]: readonly [AuditEvent, AuditEvent],
    limits: InsertLimits,
  ): Promise<{ seq: number } | { refused: InsertRefusal } | null> {
    // The old key's update is conditional on the key asking being live and, when the old key stays live
    // (a grace period), on the owner's quota, like an insert; the replacement and both events land only
    // if the update did (each `changes() = 1`).
    const minter = mintingKeyId(replacement);
    const grace = expiresAt === null || expiresAt > limits.now;
    const condition = `(? IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = ? AND ${LIVE.replaceAll("?2", "?")}))
       AND (? = 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM api_keys WHERE owner_type = ? AND owner_id = ? AND ${LIVE.replaceAll("?2", "?")} LIMIT ?)) < ?)`;
    const params = [
      minter,
      minter,
      limits.now,
      grace ? 1 : 0,
      current.owner.type,
      current.owner.id,
      limits.now,
      limits.maxKeysPerOwner,
      limits.maxKeysPerOwner,
    ];
    const seq = await this.changedKey(
      current,
      ["expires_at = ?"],
      [expiresAt],
      rotated,
      [this.insertKey(replacement, " WHERE changes() = 1"), this.insertEvent(created)],
      [],
      { sql: condition, params },
    );
    if (seq !== null) return { seq };
    return attempt("rotate", async () => {
      if (!(await this.mintingKeyLive(replacement, limits.now))) return { refused: "parent_not_live" };
      if (!grace) return null;
      const { count } = (await this.db
        .prepare(
          `SELECT COUNT(*) AS count FROM (SELECT 1 FROM api_keys WHERE owner_type = ?1 AND owner_id = ?3 AND ${LIVE} LIMIT ?4)`,
        )
        .bind(current.owner.type, limits.now, current.owner.id, limits.maxKeysPerOwner)
        .first<{ count: number }>()) ?? { count: 0 };
      return count >= limits.maxKeysPerOwner ? { refused: "owner_quota" } : null;
    });
  }

  /**
   * One UPDATE of the key if it is unrevoked and unchanged since `current` was read, its event, and
   * any further statements, each landing only if the one before it changed a row; the feed position
   * after the write (the triggers append to the feed in it), or null when nothing was written.
   */
  private async changedKey(
    current: KeyRecord,
    sets: string[],
    values: unknown[],
    event: AuditEvent,
    more: D1PreparedStatement[],
    first: D1PreparedStatement[] = [],
    condition: { sql: string; params: unknown[] } = { sql: "true", params: [] },
  ): Promise<number | null> {
    const statements = [
      ...first,
      this.db
        .prepare(
          `UPDATE api_keys SET ${[...sets, "updated_at = ?"].join(", ")} WHERE id = ? AND revoked_at IS NULL AND updated_at IS ? AND ${condition.sql}`,
        )
        .bind(...values, event.at, current.id, current.updatedAt, ...condition.params),
      this.insertEvent(event),
      ...more,
    ];
    const results = await attempt("update", () =>
      this.db.batch([...statements, this.db.prepare(`SELECT ${FEED_HEAD} AS seq`)]),
    );
    const head = results.pop()?.results[0] as { seq: number } | undefined;
    // Each statement ran only if the one before it changed a row, so all did iff the last one did. (D1's
    // meta.changes also counts rows the feed's triggers wrote, so it is not compared with 1.)
    return (results.at(-1)?.meta.changes ?? 0) > 0 ? (head?.seq ?? 0) : null;
  }

  async upgradeLegacyHash(id: string, from: string, to: string, event: AuditEvent): Promise<number | null> {
    const results = await attempt("upgrade", () =>
      this.db.batch([
        this.db.prepare("UPDATE api_keys SET legacy_hash = ? WHERE id = ? AND legacy_hash = ?").bind(to, id, from),
        this.insertEvent(event),
        this.db.prepare(`SELECT ${FEED_HEAD} AS seq`),
      ]),
    );
    const head = results.pop()?.results[0] as { seq: number } | undefined;
    // The event lands only if the update changed the row (changes() = 1): one event per upgrade.
    return (results.at(-1)?.meta.changes ?? 0) > 0 ? (head?.seq ?? 0) : null;
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

  private insertKey(r: KeyRecord, condition: string): D1PreparedStatement {
    return this.db.prepare(`INSERT INTO api_keys (${COLUMNS}) SELECT ${PLACEHOLDERS}${condition}`).bind(...values(r));
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
