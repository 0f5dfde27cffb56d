/**
 * KeyStore over several D1 databases (sharding by owner, D1_SHARDS > 1; docs/scaling.md). Each method
 * names, in one line, the database its call goes to, and `on` runs it there:
 *
 *   the owner's database (`ownerDb`)             insert, update, rotate: writes, which a bucket being moved refuses
 *   the key's owner's database (`keyOwnerDb`)    revoke, upgradeLegacyHash, upgradeHmacDigest: the key found first
 *   the key's database (`keyDb`, `locate`)       reach, replacementOf, findById: its id's bucket, then the others
 *   the hash's home's database (`homeDb`)        findUpgradedHmac; findByHash after the hash's own bucket
 *   the database a feed position names           changesAfter (its stamp), latestChanges (its `shard`)
 *   every database (`everyDb`)                   purgeEvents, checkSchema, purge
 *   the owners' databases, merged (`ownersDbs`)  list, listEvents
 *
 * and insertNew and touchLastUsed, which split their items between databases, say how below. Feed
 * positions are stamps (keys/shard.ts) that say which database's feed they belong to, so an isolate
 * follows one feed per database (service/shard-feed.ts).
 */
import type { KeyRecord, Owner } from "../model";
import { hexBucket, shardStamp, fromStamp } from "../keys/shard";
import { D1KeyStore } from "./d1";
import { touchFound } from "./d1-maintenance";
import { importRefusal } from "./d1-writes";
import type { ShardRouter } from "./shards";
import type { KeyStore, StampedRecord, StoreArgs, StoreMaintenance } from "./store";

/**
 * A database's answer with its feed positions as stamps naming the database: a position itself (a
 * number), a `seq`, or each item's. Only single-database answers pass here, and in them every number
 * and `seq` is a feed position.
 */
function stamped<T>(answer: T, shard: number): T {
  if (typeof answer === "number") return shardStamp(answer, shard) as T;
  if (Array.isArray(answer)) return answer.map((item: unknown) => stamped(item, shard)) as T;
  if (answer !== null && typeof answer === "object" && "seq" in answer && typeof answer.seq === "number") {
    return { ...answer, seq: shardStamp(answer.seq, shard) };
  }
  return answer;
}

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

const sum = (counts: number[]): number => counts.reduce((a, b) => a + b, 0);

type OnStore<T> = (store: D1KeyStore) => Promise<T>;

export class ShardedKeyStore implements KeyStore, StoreMaintenance {
  private readonly stores: D1KeyStore[] = [];
  /** Where this request found a key id (so a write after a read goes straight there). */
  private readonly idShards = new Map<string, number>();

  constructor(readonly router: ShardRouter) {}

  /** The store of database `index`. */
  shard(index: number): D1KeyStore {
    return (this.stores[index] ??= new D1KeyStore(this.router.db(index)));
  }

  insert(...[record, ...rest]: StoreArgs<"insert">) {
    return this.on(this.ownerDb(record.owner, record.id), (s) => s.insert(record, ...rest));
  }

  update(...[current, ...rest]: StoreArgs<"update">) {
    return this.on(this.ownerDb(current.owner), (s) => s.update(current, ...rest));
  }

  rotate(...args: StoreArgs<"rotate">) {
    const [current, , replacement] = args;
    return this.on(this.ownerDb(current.owner, replacement.id), (s) => s.rotate(...args));
  }

  revoke(...[id, ...rest]: StoreArgs<"revoke">) {
    return this.on(this.keyOwnerDb(id), (s) => s.revoke(id, ...rest), []);
  }

  upgradeLegacyHash(...[id, ...rest]: StoreArgs<"upgradeLegacyHash">) {
    return this.on(this.keyOwnerDb(id), (s) => s.upgradeLegacyHash(id, ...rest), null);
  }

  /**
   * An HMAC key's upgrade moves it to the SHA-256 of its token, which carries no bucket: that hash is
   * claimed in the directory of homes for the key's owner first, so the upgraded key is found by it.
   */
  upgradeHmacDigest(...[id, digest, sha, event]: StoreArgs<"upgradeHmacDigest">) {
    return this.on(this.keyOwnerDb(id, sha), (s) => s.upgradeHmacDigest(id, digest, sha, event), null);
  }

  /** With no database holding `root`, the first answers (the empty reach). */
  async reach(...[reach, root]: StoreArgs<"reach">) {
    return this.on((await this.keyDb(root)) ?? 0, (s) => s.reach(reach, root));
  }

  replacementOf(...[id]: StoreArgs<"replacementOf">) {
    return this.on(this.keyDb(id), (s) => s.replacementOf(id), null);
  }

  async findById(...[id]: StoreArgs<"findById">) {
    return (await this.locate(id))?.record ?? null;
  }

  /** The digest's home (it was imported under it), then that database. */
  findUpgradedHmac(...[digest]: StoreArgs<"findUpgradedHmac">) {
    return this.on(this.homeDb(digest), (s) => s.findUpgradedHmac(digest), null);
  }

  /** The hash's own bucket first; a miss asks the directory of homes (imported and older keys). */
  async findByHash(...[hash]: StoreArgs<"findByHash">): Promise<StampedRecord | null> {
    const shard = await this.router.shardOfBucket(hexBucket(hash));
    const found = await this.on(shard, (s) => s.findByHash(hash));
    if (found) return { ...found, record: this.note(found.record, shard) };
    const home = await this.homeDb(hash);
    if (home === null || home === shard) return null;
    const there = await this.on(home, (s) => s.findByHash(hash));
    return there ? { ...there, record: this.note(there.record, home) } : null;
  }

  /** The feed of the database `stamp` names, after its position there. */
  changesAfter(...[stamp, limit]: StoreArgs<"changesAfter">) {
    const { shard, seq } = fromStamp(stamp);
    return this.on(shard, (s) => s.changesAfter(seq, limit));
  }

  latestChanges(...[limit, shard = 0]: StoreArgs<"latestChanges">) {
    return this.on(shard, (s) => s.latestChanges(limit));
  }

  async purgeEvents(...args: StoreArgs<"purgeEvents">) {
    return sum(await this.everyDb((s) => s.purgeEvents(...args)));
  }

  async checkSchema(...args: StoreArgs<"checkSchema">) {
    await this.everyDb((s) => s.checkSchema(...args));
  }

  async purge(...args: StoreArgs<"purge">) {
    return sum(await this.everyDb((s) => s.purge(...args)));
  }

  list(...[page]: StoreArgs<"list">) {
    const read = async (s: D1KeyStore, owners: Owner[], shard: number) =>
      (await s.list({ ...page, owners })).map((record) => this.note(record, shard));
    return this.ownersDbs(page, read, (r) => [r.createdAt, r.id]);
  }

  listEvents(...[page]: StoreArgs<"listEvents">) {
    return this.ownersDbs(
      page,
      (s, owners) => s.listEvents({ ...page, owners }),
      (e) => [e.at, e.id],
    );
  }

  /**
   * An import: each hash is claimed in the directory of homes for its owner's bucket first, so a hash
   * stored for another owner, in any database, is a conflict as it is with one database. Each item goes
   * to its own owner's database (a root key imports for many owners at once). A batch whose owners live
   * in several databases is checked in each before any is written, then written database by database:
   * all or nothing but for a change between the check and the write (then the databases written stay
   * written, and a re-run finds their items as conflicts).
   */
  async insertNew(...[records, events, limits]: StoreArgs<"insertNew">) {
    if (records.length === 0) return { inserted: [] };
    const places = [];
    for (const record of records) places.push(await this.router.ownerShard(record.owner, true));
    const free: boolean[] = [];
    for (const [i, record] of records.entries()) {
      const elsewhere = await this.findByHash(record.hash);
      free.push(elsewhere === null && (await this.router.claimHome(record.hash, places[i]!.bucket)));
    }
    const groups = new Map<number, number[]>();
    for (const [i, place] of places.entries())
      if (free[i]) groups.set(place.shard, [...(groups.get(place.shard) ?? []), i]);
    if (groups.size > 1) {
      for (const [shard, items] of groups) {
        const refused = await importRefusal(
          this.router.db(shard),
          items.map((i) => records[i]!),
          limits,
        );
        if (refused) return { refused };
      }
    }
    const inserted = records.map(() => false);
    for (const [shard, items] of groups.size > 0 ? groups : new Map([[places[0]!.shard, []]])) {
      const result = await this.shard(shard).insertNew(
        items.map((i) => records[i]!),
        items.map((i) => events[i]!),
        limits,
      );
      if ("refused" in result) return result;
      items.forEach((i, k) => (inserted[i] = result.inserted[k] === true));
    }
    return { inserted };
  }

  /** In the database each id's first byte names; ids not found there (older keys) in the others. */
  async touchLastUsed(...[ids, at, minIntervalMs]: StoreArgs<"touchLastUsed">) {
    const groups = new Map<number, string[]>();
    for (const id of ids) {
      const shard = this.idShards.get(id) ?? (await this.router.idShard(id));
      groups.set(shard, [...(groups.get(shard) ?? []), id]);
    }
    for (const [shard, group] of groups) {
      let missing = group;
      for (const db of this.router.searchOrder(shard)) {
        if (missing.length === 0) break;
        missing = await touchFound(this.router.db(db), missing, at, minIntervalMs);
      }
    }
  }

  /**
   * Runs `call` on the store of database `where` (awaited: a route below), its feed positions returned
   * as stamps naming that database; `missing` when the route found no database.
   */
  private async on<T>(where: number | Promise<number>, call: OnStore<T>): Promise<T>;
  private async on<T, M>(where: Promise<number | null>, call: OnStore<T>, missing: M): Promise<T | M>;
  private async on<T, M>(where: number | Promise<number | null>, call: OnStore<T>, missing?: M): Promise<T | M> {
    const shard = await where;
    return shard === null ? (missing as M) : stamped(await call(this.shard(shard)), shard);
  }

  /** The owner's database, for a write: a bucket being moved refuses it. A key made there (`newId`) is noted. */
  private async ownerDb(owner: Owner, newId?: string): Promise<number> {
    const { shard } = await this.router.ownerShard(owner, true);
    if (newId !== undefined) this.idShards.set(newId, shard);
    return shard;
  }

  /**
   * The database of key `id`'s owner, for a write (the key found first: `locate`); with `claim`, once
   * that hash is claimed for the owner's bucket in the directory of homes. Null: no database has the
   * key, or another owner's key has the hash.
   */
  private async keyOwnerDb(id: string, claim?: string): Promise<number | null> {
    const found = await this.locate(id);
    if (!found) return null;
    const { shard, bucket } = await this.router.ownerShard(found.record.owner, true);
    if (claim !== undefined && !(await this.router.claimHome(claim, bucket))) return null;
    return shard;
  }

  /** The database holding key `id` (`locate`); null when none does. */
  private async keyDb(id: string): Promise<number | null> {
    return (await this.locate(id))?.shard ?? null;
  }

  /** The database of the bucket the directory of homes gives `hash` (keys whose hash carries no bucket); null: none. */
  private async homeDb(hash: string): Promise<number | null> {
    const home = await this.router.homeOf(hash);
    return home === null ? null : this.router.shardOfBucket(home);
  }

  /** `call` on every database in turn: each one's answer. */
  private async everyDb<T>(call: OnStore<T>): Promise<T[]> {
    const answers: T[] = [];
    for (let i = 0; i < this.router.count; i++) answers.push(await call(this.shard(i)));
    return answers;
  }

  /** The page's owners grouped by database, `read` in each that holds some, merged newest first by `order`. */
  private async ownersDbs<T>(
    page: { readonly owners: readonly Owner[]; readonly limit: number },
    read: (store: D1KeyStore, owners: Owner[], shard: number) => Promise<T[]>,
    order: (item: T) => [number, string],
  ): Promise<T[]> {
    const groups = new Map<number, Owner[]>();
    for (const owner of page.owners) {
      const { shard } = await this.router.ownerShard(owner, false);
      groups.set(shard, [...(groups.get(shard) ?? []), owner]);
    }
    const pages = await Promise.all([...groups].map(([shard, owners]) => read(this.shard(shard), owners, shard)));
    return mergeNewest(pages, order, page.limit);
  }

  /** The database holding key `id` and the record there: its id's first byte's first, then the others. */
  private async locate(id: string): Promise<{ shard: number; record: KeyRecord } | null> {
    const first = this.idShards.get(id) ?? (await this.router.idShard(id));
    for (const shard of this.router.searchOrder(first)) {
      const record = await this.shard(shard).findById(id);
      if (record) return { shard, record: this.note(record, shard) };
    }
    return null;
  }

  /** Notes where a record was found, so a write after a read goes straight there. */
  private note(record: KeyRecord, shard: number): KeyRecord {
    this.idShards.set(record.id, shard);
    return record;
  }
}
