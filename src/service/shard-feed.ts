/**
 * The change feed of several databases in one isolate (sharding by owner, D1_SHARDS > 1): one
 * FeedState per database, each following that database's own feed, behind FeedState's face so the
 * verifier (service/verify.ts) uses either alike. Positions are stamps (keys/shard.ts) naming their
 * database: a copy is trusted only by its own database's feed, and only if no other database's feed
 * has a change to the same key (a key moved with its bucket), so a change anywhere is honoured.
 */
import { fromStamp, shardStamp } from "../keys/shard";
import type { KeyChange, KeyStore } from "../store/store";
import { FeedState, type KnownChange } from "./feed";

/** What a feed reads: the changes after a position, and the newest ones. */
export type FeedSource = Pick<KeyStore, "changesAfter" | "latestChanges">;

/** Database `shard`'s feed in its own positions, from a store whose positions are stamps. */
function shardSource(store: FeedSource, shard: number): FeedSource {
  const native = (changes: KeyChange[]) => changes.map((change) => ({ ...change, seq: fromStamp(change.seq).seq }));
  return {
    changesAfter: async (seq, limit) => native(await store.changesAfter(shardStamp(seq, shard), limit)),
    latestChanges: async (limit) => native(await store.latestChanges(limit, shard)),
  };
}

export class ShardFeeds {
  /** How many databases there are (set by the verifier from the configuration). */
  shards = 1;
  lastSyncAt = 0;
  attemptedAt = 0;
  running = false;
  private readonly states: FeedState[] = [];

  private state(shard: number): FeedState {
    return (this.states[shard] ??= new FeedState());
  }

  /** The first database's position, as a stamp (a revocation noted here is sticky whichever feed holds it). */
  get seq(): number {
    return shardStamp(this.state(0).seq, 0);
  }

  get known(): number {
    return this.states.reduce((sum, state) => sum + (state?.known ?? 0), 0);
  }

  clear(): void {
    this.states.length = 0;
    this.lastSyncAt = 0;
    this.attemptedAt = 0;
    this.running = false;
  }

  change(hash: string): KnownChange | undefined {
    for (const state of this.states) {
      const change = state?.change(hash);
      if (change) return change;
    }
    return undefined;
  }

  note(hash: string, change: Omit<KnownChange, "revoked" | "learntAt"> & { revoked: boolean }, now: number): void {
    const { shard, seq } = fromStamp(change.seq);
    this.state(shard).note(hash, { ...change, seq }, now);
  }

  trusts(hash: string, stamp: number, source: "kv" | "d1"): boolean {
    const { shard, seq } = fromStamp(stamp);
    for (const [index, state] of this.states.entries()) {
      if (index !== shard && state?.change(hash)) return false;
    }
    return this.state(shard).trusts(hash, seq, source);
  }

  prune(now: number): void {
    for (const state of this.states) state?.prune(now);
  }

  /** Every database's feed in turn (one query each when nothing changed); a failure throws. */
  async sync(store: FeedSource, now: number, drop: (hash: string) => void, start: () => void): Promise<void> {
    for (let shard = 0; shard < this.shards; shard++) {
      const state = this.state(shard);
      // Each database's state keeps its own bookkeeping; the isolate-wide times are this object's.
      state.lastSyncAt = this.lastSyncAt;
      await state.sync(shardSource(store, shard), now, drop, start);
    }
  }
}

/** The feed an isolate follows: its one database's, or (D1_SHARDS > 1) every database's. */
export function isolateFeed(
  local: { feed: FeedState; shardFeeds: ShardFeeds },
  shards: number,
): FeedState | ShardFeeds {
  if (shards === 1) return local.feed;
  local.shardFeeds.shards = shards;
  return local.shardFeeds;
}
