/**
 * The stores besides keys, over several D1 databases (sharding by owner, D1_SHARDS > 1): owners'
 * limits and their log in the owner's database, verification counts in the database of the key id's
 * bucket (where the key is, for every key made in sharded mode), leak reports in each database that
 * holds a reported key, webhooks' outboxes in every database (sharded-webhooks.ts). `storesFor` gives the one-database stores when D1_SHARDS is 1 or unset.
 */
import type { Env } from "../env";
import type { Config } from "../config";
import type { KeyLimits } from "../keys/limit-arithmetic";
import type { KeyRecord, LeakAction, Owner } from "../model";
import { D1KeyStore } from "./d1";
import type { D1Queries } from "./d1-session";
import { D1LeakStore, type LeakChange, type LeakStore, type ReportedKey } from "./leaks";
import { D1OwnerLimitsStore, type OwnerEvent, type OwnerLimitsStore, type StoredOwnerLimits } from "./owner-limits";
import { ShardedKeyStore } from "./sharded-keys";
import { ShardRouter } from "./shards";
import type { KeyStore, RevocationOrigin, StoreMaintenance } from "./store";
import { D1UsageStore, PartlyWrittenError, type UsageCount, type UsageStore } from "./usage-counts";
import { D1WarningStore, type WarningStore } from "./warnings";
import { D1WebhookStore } from "./webhooks";
import { ShardedWebhookStore } from "./sharded-webhooks";
import { fromStamp, hexBucket, shardStamp } from "../keys/shard";

export interface Stores {
  readonly keys: KeyStore & StoreMaintenance;
  readonly usage: UsageStore;
  readonly ownerLimits: OwnerLimitsStore;
  readonly leaks: LeakStore;
  /** One per database: the expiry scan runs over each. */
  readonly warnings: readonly WarningStore[];
  /** Endpoints and deliveries in the first database; the outboxes of every database (sharded-webhooks.ts). */
  readonly webhooks: D1WebhookStore;
}

export function storesFor(env: Env, config: Config): Stores {
  if (config.shards.count === 1 && config.shards.problem === null) return oneDatabaseStores(env.DB);
  const router = new ShardRouter(env, config.shards);
  const keys = new ShardedKeyStore(router);
  return {
    keys,
    usage: new ShardedUsageStore(router),
    ownerLimits: new ShardedOwnerLimitsStore(router),
    leaks: new ShardedLeakStore(keys),
    warnings: config.shards.problem
      ? []
      : Array.from({ length: router.count }, (_, i) => new D1WarningStore(router.db(i))),
    webhooks: config.shards.problem ? new D1WebhookStore(env.DB) : new ShardedWebhookStore(router),
  };
}

/** The stores of one database, through `db`: the binding, or a request session's primary handle (d1-session.ts). */
export function oneDatabaseStores(db: D1Queries): Stores {
  return {
    keys: new D1KeyStore(db),
    usage: new D1UsageStore(db),
    ownerLimits: new D1OwnerLimitsStore(db),
    leaks: new D1LeakStore(db),
    warnings: [new D1WarningStore(db)],
    webhooks: new D1WebhookStore(db),
  };
}

class ShardedUsageStore implements UsageStore {
  constructor(private readonly router: ShardRouter) {}

  /**
   * A batch touching a bucket being moved is refused whole, before any write (the tally keeps it for
   * later). Each database's share is written at once, side by side; when some fail and others do not,
   * PartlyWrittenError names the counts not written, so that only those are written again.
   */
  async add(counts: readonly UsageCount[]): Promise<void> {
    const groups = new Map<number, UsageCount[]>();
    for (const count of counts) {
      const bucket = hexBucket(count.keyId);
      if (Number.isInteger(bucket)) await this.router.refuseIfMoving(bucket);
    }
    for (const count of counts) {
      const shard = await this.router.idShard(count.keyId);
      const group = groups.get(shard);
      if (group) group.push(count);
      else groups.set(shard, [count]);
    }
    const shares = [...groups];
    const results = await Promise.allSettled(
      shares.map(([shard, group]) => new D1UsageStore(this.router.db(shard)).add(group)),
    );
    const failed = results.flatMap((result, i) =>
      result.status === "rejected" ? [{ result, group: shares[i]![1] }] : [],
    );
    if (failed.length === 0) return;
    const cause = failed[0]!.result.reason;
    if (failed.length === shares.length) throw cause;
    throw new PartlyWrittenError(
      failed.flatMap((f) => f.group),
      { cause },
    );
  }

  async read(keyId: string, from: number, to: number): Promise<UsageCount[]> {
    return new D1UsageStore(this.router.db(await this.router.idShard(keyId))).read(keyId, from, to);
  }
}

class ShardedOwnerLimitsStore implements OwnerLimitsStore {
  constructor(private readonly router: ShardRouter) {}

  private async store(owner: Owner, write: boolean): Promise<D1OwnerLimitsStore> {
    return new D1OwnerLimitsStore(this.router.db((await this.router.ownerShard(owner, write)).shard));
  }

  async get(owner: Owner): Promise<StoredOwnerLimits | null> {
    return (await this.store(owner, false)).get(owner);
  }

  async put(owner: Owner, limits: KeyLimits | null, readAt: number | null, event: OwnerEvent): Promise<boolean> {
    return (await this.store(owner, true)).put(owner, limits, readAt, event);
  }

  async usage(owner: Owner, from: number, to: number): Promise<UsageCount[]> {
    return (await this.store(owner, false)).usage(owner, from, to);
  }

  async events(owner: Owner, limit: number): Promise<OwnerEvent[]> {
    return (await this.store(owner, false)).events(owner, limit);
  }
}

class ShardedLeakStore implements LeakStore {
  /** The database each reported hash was found in, and its owner. */
  private readonly found = new Map<string, { shard: number; owner: Owner }>();

  constructor(private readonly keys: ShardedKeyStore) {}

  async findByHashes(hashes: readonly string[]): Promise<ReportedKey[]> {
    const reported: ReportedKey[] = [];
    for (const hash of hashes) {
      const stored = await this.keys.findByHash(hash);
      if (!stored) continue;
      const { record } = stored;
      this.found.set(hash, { shard: fromStamp(stored.seq).shard, owner: record.owner });
      reported.push({ id: record.id, hash, owner: record.owner, revokedAt: record.revokedAt, enabled: record.enabled });
    }
    return reported;
  }

  async markLeaked(
    action: LeakAction,
    leaks: readonly LeakChange[],
    at: number,
    origin: RevocationOrigin,
  ): Promise<{ records: KeyRecord[]; seq: number }> {
    const groups = new Map<number, LeakChange[]>();
    for (const leak of leaks) {
      const found = this.found.get(leak.hash);
      if (found === undefined) continue;
      // A key whose owner's bucket is being moved: refused (503) before anything is written.
      await this.keys.router.ownerShard(found.owner, true);
      groups.set(found.shard, [...(groups.get(found.shard) ?? []), leak]);
    }
    const records: KeyRecord[] = [];
    let seq = 0;
    for (const [shard, group] of groups) {
      const done = await new D1LeakStore(this.keys.router.db(shard)).markLeaked(action, group, at, origin);
      records.push(...done.records);
      seq = shardStamp(done.seq, shard);
    }
    return { records, seq };
  }
}
