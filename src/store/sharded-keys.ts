/**
 * KeyStore over several D1 databases (sharding by owner, D1_SHARDS > 1; docs/scaling.md): each call
 * goes to the database of the owner it names (writes, and a bucket being moved refuses them), of the
 * key's hash (lookups: the hash's first byte, then the directory of homes), or of the key id (its
 * first byte, then the other databases). Pages of several owners are read from each database that
 * holds some and merged. Feed positions are stamps (keys/shard.ts) that say which database's feed they
 * belong to, so an isolate follows one feed per database (service/shard-feed.ts).
 */
import type { AuditEvent, KeyRecord, Owner } from "../model";
import { hexBucket, shardStamp, fromStamp } from "../keys/shard";
import { D1KeyStore } from "./d1";
import type { ShardRouter } from "./shards";
import type {
  EventPage,
  IdempotencyClaim,
  InsertLimits,
  InsertRefusal,
  KeyChange,
  KeyChanges,
  KeyStore,
  ListPage,
  Reach,
  ReachGuard,
  RevocationOrigin,
  StampedRecord,
  StoreMaintenance,
} from "./store";
import { attempt } from "./d1-sql";

const stamped = (changes: KeyChange[], shard: number): KeyChange[] =>
  changes.map((change) => ({ ...change, seq: shardStamp(change.seq, shard) }));

/** Newest first by (time, id), as every page is ordered. */
function mergeNewest<T>(pages: T[][], key: (item: T) => [number, string], limit: number): T[] {
  return pages
    .flat()
    .sort((a, b) => {
      const [ta, ia] = key(a);
      const [tb, ib] = key(b);
      return tb - ta || (ib < ia ? -1 : ib > ia ? 1 : 0);
    })
    .slice(0, limit);
}

export class ShardedKeyStore implements KeyStore, StoreMaintenance {
  private readonly stores: D1KeyStore[] = [];
  /** Where this request found a key id (so a write after a read goes straight there). */
  private readonly idShards = new Map<string, number>();

  constructor(readonly router: ShardRouter) {}

  /** The store of database `index`. */
  shard(index: number): D1KeyStore {
    return (this.stores[index] ??= new D1KeyStore(this.router.db(index)));
  }

  private note(record: KeyRecord, shard: number): KeyRecord {
    this.idShards.set(record.id, shard);
    return record;
  }

  private async writeShard(owner: Owner): Promise<number> {
    return (await this.router.ownerShard(owner, true)).shard;
  }

  /** The database holding key `id` and the record there; null when no database has it. */
  private async locate(id: string): Promise<{ shard: number; record: KeyRecord } | null> {
    const known = this.idShards.get(id);
    const first = known ?? (await this.router.idShard(id));
    const order = [first, ...Array.from({ length: this.router.count }, (_, i) => i).filter((i) => i !== first)];
    for (const shard of order) {
      const record = await this.shard(shard).findById(id);
      if (record) return { shard, record: this.note(record, shard) };
    }
    return null;
  }

  async insert(
    r: KeyRecord,
    event: AuditEvent,
    limits: InsertLimits,
    claim?: IdempotencyClaim,
  ): Promise<{ seq: number } | { refused: InsertRefusal }> {
    const shard = await this.writeShard(r.owner);
    const result = await this.shard(shard).insert(r, event, limits, claim);
    this.idShards.set(r.id, shard);
    return "seq" in result ? { seq: shardStamp(result.seq, shard) } : result;
  }

  /**
   * An import: each hash is claimed in the directory of homes for the owner's bucket first, so a hash
   * stored for another owner, in any database, is a conflict as it is with one database.
   */
  async insertNew(
    records: readonly KeyRecord[],
    events: readonly AuditEvent[],
    limits: InsertLimits,
  ): Promise<{ inserted: boolean[] } | { refused: InsertRefusal }> {
    if (records.length === 0) return { inserted: [] };
    const { shard, bucket } = await this.router.ownerShard(records[0]!.owner, true);
    const free: boolean[] = [];
    for (const record of records) {
      const elsewhere = await this.findByHash(record.hash);
      free.push(elsewhere === null && (await this.router.claimHome(record.hash, bucket)));
    }
    const kept = records.filter((_, i) => free[i]);
    const result = await this.shard(shard).insertNew(
      kept,
      events.filter((_, i) => free[i]),
      limits,
    );
    if ("refused" in result) return result;
    let next = 0;
    return { inserted: free.map((isFree) => isFree && result.inserted[next++] === true) };
  }

  async reach(reach: Reach, root: string): Promise<{ records: KeyRecord[]; guard: ReachGuard }> {
    const found = await this.locate(root);
    return this.shard(found?.shard ?? 0).reach(reach, root);
  }

  async revoke(
    id: string,
    at: number,
    cascade: boolean,
    origin: RevocationOrigin,
    guard?: ReachGuard,
  ): Promise<KeyRecord[]> {
    const found = await this.locate(id);
    if (!found) return [];
    const shard = await this.writeShard(found.record.owner);
    return this.shard(shard).revoke(id, at, cascade, origin, guard);
  }

  async update(
    current: KeyRecord,
    changes: KeyChanges,
    event: AuditEvent,
    guards: readonly ReachGuard[] = [],
  ): Promise<number | null> {
    const shard = await this.writeShard(current.owner);
    const seq = await this.shard(shard).update(current, changes, event, guards);
    return seq === null ? null : shardStamp(seq, shard);
  }

  async rotate(
    current: KeyRecord,
    expiresAt: number | null,
    replacement: KeyRecord,
    events: readonly [AuditEvent, AuditEvent],
    limits: InsertLimits,
  ): Promise<{ seq: number } | { refused: InsertRefusal } | null> {
    const shard = await this.writeShard(current.owner);
    const result = await this.shard(shard).rotate(current, expiresAt, replacement, events, limits);
    this.idShards.set(replacement.id, shard);
    return result && "seq" in result ? { seq: shardStamp(result.seq, shard) } : result;
  }

  /** The hash's own bucket first; a miss asks the directory of homes (imported and older keys). */
  async findByHash(hash: string): Promise<StampedRecord | null> {
    const shard = await this.router.shardOfBucket(hexBucket(hash));
    const found = await this.shard(shard).findByHash(hash);
    if (found) return { record: this.note(found.record, shard), seq: shardStamp(found.seq, shard) };
    const home = await this.router.homeOf(hash);
    if (home === null) return null;
    const homeShard = await this.router.shardOfBucket(home);
    if (homeShard === shard) return null;
    const there = await this.shard(homeShard).findByHash(hash);
    return there ? { record: this.note(there.record, homeShard), seq: shardStamp(there.seq, homeShard) } : null;
  }

  async findById(id: string): Promise<KeyRecord | null> {
    return (await this.locate(id))?.record ?? null;
  }

  async replacementOf(id: string): Promise<string | null> {
    const found = await this.locate(id);
    return found ? this.shard(found.shard).replacementOf(id) : null;
  }

  /** The owners' pages of each database that holds some, merged newest first. */
  private async byShard(owners: readonly Owner[]): Promise<Map<number, Owner[]>> {
    const groups = new Map<number, Owner[]>();
    for (const owner of owners) {
      const { shard } = await this.router.ownerShard(owner, false);
      groups.set(shard, [...(groups.get(shard) ?? []), owner]);
    }
    return groups;
  }

  async list(page: ListPage): Promise<KeyRecord[]> {
    const groups = await this.byShard(page.owners);
    const pages = await Promise.all(
      [...groups].map(async ([shard, owners]) =>
        (await this.shard(shard).list({ ...page, owners })).map((record) => this.note(record, shard)),
      ),
    );
    return mergeNewest(pages, (r) => [r.createdAt, r.id], page.limit);
  }

  async listEvents(page: EventPage): Promise<AuditEvent[]> {
    const groups = await this.byShard(page.owners);
    const pages = await Promise.all(
      [...groups].map(([shard, owners]) => this.shard(shard).listEvents({ ...page, owners })),
    );
    return mergeNewest(pages, (e) => [e.at, e.id], page.limit);
  }

  async purgeEvents(before: number, limit: number): Promise<number> {
    let purged = 0;
    for (let i = 0; i < this.router.count; i++) purged += await this.shard(i).purgeEvents(before, limit);
    return purged;
  }

  /** The feed of the database `stamp` names, after its position there. */
  async changesAfter(stamp: number, limit: number): Promise<KeyChange[]> {
    const { shard, seq } = fromStamp(stamp);
    return stamped(await this.shard(shard).changesAfter(seq, limit), shard);
  }

  async latestChanges(limit: number, shard = 0): Promise<KeyChange[]> {
    return stamped(await this.shard(shard).latestChanges(limit), shard);
  }

  /** In the database each id's first byte names; ids not found there (older keys) in the others. */
  async touchLastUsed(ids: readonly string[], at: number, minIntervalMs: number): Promise<void> {
    const groups = new Map<number, string[]>();
    for (const id of ids) {
      const shard = this.idShards.get(id) ?? (await this.router.idShard(id));
      groups.set(shard, [...(groups.get(shard) ?? []), id]);
    }
    for (const [shard, group] of groups) {
      const missing = await touchFound(this.router.db(shard), group, at, minIntervalMs);
      for (let other = 0; other < this.router.count && missing.length > 0; other++) {
        if (other === shard) continue;
        const still = await touchFound(this.router.db(other), missing, at, minIntervalMs);
        missing.splice(0, missing.length, ...still);
      }
    }
  }

  async upgradeLegacyHash(id: string, from: string, to: string, event: AuditEvent): Promise<number | null> {
    const found = await this.locate(id);
    if (!found) return null;
    const shard = await this.writeShard(found.record.owner);
    const seq = await this.shard(shard).upgradeLegacyHash(id, from, to, event);
    return seq === null ? null : shardStamp(seq, shard);
  }

  async checkSchema(latestMigration: string): Promise<void> {
    for (let i = 0; i < this.router.count; i++) await this.shard(i).checkSchema(latestMigration);
  }

  async purge(before: number, idempotencyBefore: number, limit: number): Promise<number> {
    let purged = 0;
    for (let i = 0; i < this.router.count; i++) purged += await this.shard(i).purge(before, idempotencyBefore, limit);
    return purged;
  }
}

/**
 * Last use of the keys `ids` in one database, as D1KeyStore writes it; the ids it has no row of (so
 * their rows are elsewhere) are returned.
 */
async function touchFound(
  db: D1Database,
  ids: readonly string[],
  at: number,
  minIntervalMs: number,
): Promise<string[]> {
  return attempt("last-used update", async () => {
    const list = ids.map(() => "?").join(", ");
    const [, present] = await db.batch<{ id: string }>([
      db
        .prepare(
          `UPDATE api_keys SET last_used_at = ? WHERE id IN (${list}) AND (last_used_at IS NULL OR last_used_at <= ?)`,
        )
        .bind(at, ...ids, at - minIntervalMs),
      db.prepare(`SELECT id FROM api_keys WHERE id IN (${list})`).bind(...ids),
    ]);
    const found = new Set((present?.results ?? []).map((row) => row.id));
    return ids.filter((id) => !found.has(id));
  });
}
