/**
 * This isolate's view of the change feed (migrations/0002_key_changes.sql): the bookkeeping that lets
 * it keep key records in memory and trust KV copies without being told by the isolate that changed
 * them. D1 numbers every change (`seq`) in commit order, so following the feed by `seq` needs no
 * overlap window and cannot miss a change, whatever time the change was stamped with or how late it
 * committed.
 *
 * The isolate remembers the changes it has seen for as long as a stale copy of the changed record can
 * live anywhere (CHANGE_MEMORY_MS), and at most CHANGE_MEMORY_ENTRIES of them. Every record read from
 * D1 or KV carries the feed position it was read at; a copy is trusted only when every change after
 * that position is known here (`floor`) and none of them is to this key. So a stale KV copy of a
 * revoked or updated key is never served, and forgetting a change (by count) costs D1 reads, never
 * a wrong answer: the floor rises past it.
 *
 * The sync itself (service/verify.ts) follows the feed from `seq`; a new isolate, one idle for longer
 * than the memory lasts, or one too far behind, starts over from the newest COLD_TAIL changes.
 */
import { KV_CACHE_TTL_SECONDS, KV_TTL_SECONDS } from "../store/cache";
import type { KeyChange, KeyStore } from "../store/store";

/**
 * How long a change is remembered: longer than a copy read before it can live in KV (a deferred put
 * lands within the 30 s of waitUntil, lives KV_TTL_SECONDS, and the KV edge may serve it for
 * KV_CACHE_TTL_SECONDS more), with a margin.
 */
export const CHANGE_MEMORY_MS = (KV_TTL_SECONDS + KV_CACHE_TTL_SECONDS + 60) * 1000;
/** At most this many changes are remembered (about 250 bytes each: 5 MB). */
export const CHANGE_MEMORY_ENTRIES = 20_000;
/** One page of the feed; a sync reads at most MAX_PAGES of them before it starts over instead. */
export const FEED_PAGE = 1000;
const MAX_PAGES = 5;
/** How much of the feed a new isolate reads: covers KV's lifetime unless changes came faster. */
export const COLD_TAIL = 1000;

/** A change this isolate knows of. */
export interface KnownChange {
  readonly seq: number;
  readonly keyId: string;
  readonly revoked: boolean;
  readonly learntAt: number;
}

export class FeedState {
  /** Every change up to this position has been applied here. */
  seq = 0;
  /** Every change after this position is known here. Infinity: no sync has succeeded yet. */
  floor = Infinity;
  /** When the last successful sync started (0: never): what this isolate knows is current as of then. */
  lastSyncAt = 0;
  /** When the last sync attempt started: one attempt per interval, even while D1 fails. */
  attemptedAt = 0;
  running = false;
  /** hash -> change, oldest first (insertion order is feed order). */
  private readonly changes = new Map<string, KnownChange>();

  get known(): number {
    return this.changes.size;
  }

  clear(): void {
    this.seq = 0;
    this.floor = Infinity;
    this.lastSyncAt = 0;
    this.attemptedAt = 0;
    this.running = false;
    this.changes.clear();
  }

  change(hash: string): KnownChange | undefined {
    return this.changes.get(hash);
  }

  /** Remembers a change; a revocation stays a revocation whatever follows it. */
  note(hash: string, change: Omit<KnownChange, "revoked" | "learntAt"> & { revoked: boolean }, now: number): void {
    const previous = this.changes.get(hash);
    this.changes.delete(hash);
    this.changes.set(hash, { ...change, revoked: change.revoked || previous?.revoked === true, learntAt: now });
    while (this.changes.size > CHANGE_MEMORY_ENTRIES) {
      const [oldest] = this.changes.keys();
      if (oldest === undefined) break;
      this.changes.delete(oldest);
      // Knowledge of everything applied so far is no longer complete: copies read before now are not trusted.
      this.floor = Math.max(this.floor, this.seq);
    }
  }

  /**
   * Whether a copy of `hash` current as of feed position `seq` may be kept. From KV only when every
   * later change is known here; from D1 (just read) also before the first sync, which starts over.
   */
  trusts(hash: string, seq: number, source: "kv" | "d1"): boolean {
    if (this.floor === Infinity ? source === "kv" : seq < this.floor) return false;
    const change = this.changes.get(hash);
    return change === undefined || change.seq <= seq;
  }

  /** Forgets changes older than any stale copy can be (insertion order is about learning order). */
  prune(now: number): void {
    for (const [hash, change] of this.changes) {
      if (change.learntAt > now - CHANGE_MEMORY_MS) break;
      this.changes.delete(hash);
    }
  }

  /**
   * Brings this isolate up to the head of the feed, calling `drop` for every changed hash. Throws on
   * a D1 failure (what was applied stays applied). `start` says the position is unknown or too old.
   */
  async sync(
    store: Pick<KeyStore, "changesAfter" | "latestChanges">,
    now: number,
    drop: (hash: string) => void,
    start: () => void,
  ): Promise<void> {
    if (this.floor === Infinity || now - this.lastSyncAt > CHANGE_MEMORY_MS) {
      await this.startOver(store, now, start);
      return;
    }
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const page = await store.changesAfter(this.seq, FEED_PAGE);
      this.apply(page, now, drop);
      if (page.length < FEED_PAGE) return;
    }
    // Further behind than a sync should read: start over from the tail rather than page through it all.
    await this.startOver(store, now, start);
  }

  private async startOver(
    store: Pick<KeyStore, "changesAfter" | "latestChanges">,
    now: number,
    start: () => void,
  ): Promise<void> {
    const tail = await store.latestChanges(COLD_TAIL);
    start();
    // Changes already known stay known (they are facts of the same feed); only the position restarts.
    this.seq = 0;
    this.apply(tail, now, () => {});
    // Fewer than asked: the feed holds nothing older, so every change is known.
    this.floor = tail.length < COLD_TAIL ? 0 : tail[0]!.seq - 1;
  }

  private apply(changes: readonly KeyChange[], now: number, drop: (hash: string) => void): void {
    for (const change of changes) {
      drop(change.hash);
      this.note(change.hash, { seq: change.seq, keyId: change.keyId, revoked: change.kind === "revoked" }, now);
      this.seq = change.seq;
    }
  }
}
