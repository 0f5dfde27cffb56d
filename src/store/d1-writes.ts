/**
 * Writes to key rows in D1, each one batch (one transaction) with its audit events: the conditional
 * insert and import, rotation, updates (a chain's limits with them), revocation (a lineage's with
 * it), and the lineage reads whose guards pin what a write reaches.
 */
import type { D1Queries } from "./d1-session";
import { type AuditEvent, type KeyRecord, mintingKeyId } from "../model";
import {
  COLUMNS,
  EVENT_COLUMNS,
  type KeyRow,
  MAX_KEYS_PARAM,
  UPDATABLE,
  VALUE_PARAMS_FROM_3,
  VALUE_PARAMS_FROM_7,
  fromRow,
  jsonOrNull,
  values,
} from "./d1-rows";
import { claimStatements, throwIfClaimed } from "./d1-idempotency";
import {
  FEED_HEAD,
  LIVE,
  NEW_UUID,
  TREES,
  attempt,
  fingerprintOf,
  guardStatement,
  insertEvent,
  insertKey,
  mintingKeyLive,
  reachedRows,
} from "./d1-sql";
import type {
  IdempotencyClaim,
  InsertLimits,
  InsertRefusal,
  KeyChanges,
  Reach,
  ReachGuard,
  RevocationOrigin,
} from "./store";

/**
 * One statement: INSERT ... SELECT ... WHERE <parent live> AND <owner under quota>, so neither a
 * revocation of the parent nor concurrent creates can slip between the check and the write (D1 runs
 * one statement at a time). The quota count stops at the limit, so it reads at most that many index
 * entries (api_keys_owner_live). With an Idempotency-Key claim, the claim is written in the same
 * batch (one transaction) right after, only if the key was: a second claim fails on the primary key
 * and takes its key with it. The key's `created` audit event is in the same batch.
 */
export function insert(
  db: D1Queries,
  r: KeyRecord,
  event: AuditEvent,
  limits: InsertLimits,
  claim?: IdempotencyClaim,
): Promise<{ seq: number } | { refused: InsertRefusal }> {
  return attempt("insert", async () => {
    const insertKey = db
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
    const statements = [insertKey, insertEvent(db, event)];
    if (claim) {
      const [forgetExpired, recordClaim] = claimStatements(db, claim, r.id, r.createdAt);
      statements.unshift(forgetExpired);
      statements.push(recordClaim);
    }
    let inserted: { seq: number } | null;
    try {
      const results = await db.batch<{ seq: number }>(statements);
      inserted = results[claim ? 1 : 0]?.results[0] ?? null;
    } catch (error) {
      if (claim) await throwIfClaimed(db, claim);
      throw error;
    }
    // Refused: a retry of a request that did create its key is still a replay, not a refusal.
    if (!inserted && claim) await throwIfClaimed(db, claim);
    if (inserted) return { seq: inserted.seq };
    // Nothing stored: say why (the parent cannot come back to life, so this answer is stable).
    return { refused: (await mintingKeyLive(db, r, limits.now)) ? "owner_quota" : "parent_not_live" };
  });
}

export async function insertNew(
  db: D1Queries,
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
  const params = [minter, limits.now, owner?.type ?? "", owner?.id ?? "", ids, limits.maxKeysPerOwner - records.length];
  const live = `(?1 IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = ?1 AND ${LIVE}))`;
  const quota = `(SELECT COUNT(*) FROM (SELECT 1 FROM api_keys WHERE owner_type = ?3 AND owner_id = ?4 AND ${LIVE} AND id NOT IN (SELECT value FROM json_each(?5)) LIMIT MAX(?6 + 1, 0))) <= ?6`;
  // One batch is one transaction; a stored hash makes its row a no-op, never a duplicate, and then
  // its event (which follows it) is not written either.
  const results = await attempt("import", () =>
    db.batch([
      db.prepare(`SELECT ${live} AS live, ${quota} AS room`).bind(...params),
      ...records.flatMap((r, i) => [
        db
          .prepare(
            `INSERT INTO api_keys (${COLUMNS}) SELECT ${VALUE_PARAMS_FROM_7} WHERE ${live} AND ${quota} ON CONFLICT (hash) DO NOTHING`,
          )
          .bind(...params, ...values(r)),
        insertEvent(db, events[i]!),
      ]),
    ]),
  );
  const verdict = results[0]?.results[0] as { live: number; room: number } | undefined;
  if (!verdict?.live) return { refused: "parent_not_live" };
  if (!verdict.room) return { refused: "owner_quota" };
  return { inserted: records.map((_, i) => results[1 + 2 * i]?.meta.changes === 1) };
}

export function reach(db: D1Queries, reach: Reach, root: string): Promise<{ records: KeyRecord[]; guard: ReachGuard }> {
  return attempt("lineage read", async () => {
    // One batch (one transaction): the rows and their fingerprint are of the same moment.
    const [rows, print] = await db.batch([
      db.prepare(reachedRows(reach, COLUMNS)).bind(root),
      db.prepare(`SELECT (${fingerprintOf(reach)}) AS fingerprint`).bind(root),
    ]);
    const fingerprint = (print?.results[0] as { fingerprint: string } | undefined)?.fingerprint ?? "[]";
    return { records: ((rows?.results ?? []) as KeyRow[]).map(fromRow), guard: { reach, root, fingerprint } };
  });
}

export function revoke(
  db: D1Queries,
  id: string,
  at: number,
  cascade: boolean,
  origin: RevocationOrigin,
  guard?: ReachGuard,
): Promise<KeyRecord[]> {
  return attempt("revoke", async () => {
    // One batch (one transaction): first a `revoked` event for each key about to be newly revoked,
    // then one UPDATE, so the key and its descendants are revoked together or not at all; the
    // trigger api_keys_feed_revoked appends each newly revoked key to the feed in it.
    const tree = cascade ? TREES.tree : "";
    const which = cascade ? "id IN (SELECT id FROM tree)" : "id = ?1";
    const changes = JSON.stringify({ revoked_at: { old: null, new: new Date(at).toISOString() } });
    const guarded = guard ? [guardStatement(db, guard)] : [];
    const results = await db.batch<KeyRow>([
      ...guarded,
      db
        .prepare(
          `${tree}INSERT INTO key_events (${EVENT_COLUMNS})
           SELECT ${NEW_UUID}, id, owner_type, owner_id, 'revoked', ?3, ?2, ?4, ?5, ?6
           FROM api_keys WHERE ${which} AND revoked_at IS NULL`,
        )
        .bind(id, at, origin.actor, changes, origin.ip, origin.userAgent),
      db
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

export function update(
  db: D1Queries,
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
  const chain = changes.limits === undefined ? [] : chainLimits(db, current, changes.limits, event);
  return changedKey(db, current, sets, values, event, [], [...guards.map((g) => guardStatement(db, g)), ...chain]);
}

/**
 * The keys sharing `current`'s usage counters (its rotations and the keys made by a key with limits:
 * usage_id, or the chain's first key) hold the same limits, so a change of one is a change of all:
 * statements that give every other live key of the chain `limits`, each with its own audit event,
 * landing (first in the batch) only if `current` is still as it was read.
 */
export function chainLimits(
  db: D1Queries,
  current: KeyRecord,
  limits: KeyChanges["limits"],
  event: AuditEvent,
): D1PreparedStatement[] {
  const chain = current.usageId ?? current.id;
  // ?1 chain, ?2 the key itself, ?3 its updated_at as read.
  const others =
    "(usage_id = ?1 OR id = ?1) AND id != ?2 AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM api_keys WHERE id = ?2 AND revoked_at IS NULL AND updated_at IS ?3)";
  return [
    db
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
    db
      .prepare(`UPDATE api_keys SET limits = ?4, updated_at = ?5 WHERE ${others}`)
      .bind(chain, current.id, current.updatedAt, jsonOrNull(limits ?? null), event.at),
  ];
}

export async function rotate(
  db: D1Queries,
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
  const seq = await changedKey(
    db,
    current,
    ["expires_at = ?"],
    [expiresAt],
    rotated,
    [insertKey(db, replacement, " WHERE changes() = 1"), insertEvent(db, created)],
    [],
    { sql: condition, params },
  );
  if (seq !== null) return { seq };
  return attempt("rotate", async () => {
    if (!(await mintingKeyLive(db, replacement, limits.now))) return { refused: "parent_not_live" };
    if (!grace) return null;
    const { count } = (await db
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
export async function changedKey(
  db: D1Queries,
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
    db
      .prepare(
        `UPDATE api_keys SET ${[...sets, "updated_at = ?"].join(", ")} WHERE id = ? AND revoked_at IS NULL AND updated_at IS ? AND ${condition.sql}`,
      )
      .bind(...values, event.at, current.id, current.updatedAt, ...condition.params),
    insertEvent(db, event),
    ...more,
  ];
  const results = await attempt("update", () => db.batch([...statements, db.prepare(`SELECT ${FEED_HEAD} AS seq`)]));
  const head = results.pop()?.results[0] as { seq: number } | undefined;
  // Each statement ran only if the one before it changed a row, so all did iff the last one did. (D1's
  // meta.changes also counts rows the feed's triggers wrote, so it is not compared with 1.)
  return (results.at(-1)?.meta.changes ?? 0) > 0 ? (head?.seq ?? 0) : null;
}
