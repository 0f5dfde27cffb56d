/**
 * A bounded LRU map with a time-to-live, for the per-isolate caches (key records, unknown hashes,
 * rate-limited clients). An isolate has 128 MB, and cached values can differ in size by two orders of
 * magnitude, so besides a count a cache can be bounded by approximate bytes: `sizeOf` estimates an
 * entry once, when it is set, and the least recently used entries go until both bounds hold.
 * A Map keeps insertion order, so re-inserting on read makes the first entry the least recently used.
 */
export interface ByteBudget<K, V> {
  readonly maxBytes: number;
  /** An entry's approximate heap bytes: cheap, and called once per set. */
  readonly sizeOf: (key: K, value: V) => number;
}

/** Told of every entry that enters or leaves (replaced, deleted, evicted, found expired, cleared); not of reads. */
export interface LruWatcher<K, V> {
  added(key: K, value: V): void;
  removed(key: K, value: V): void;
}

interface Entry<V> {
  readonly value: V;
  readonly expiresAt: number;
  readonly bytes: number;
}

export class TtlLru<K, V> {
  private readonly entries = new Map<K, Entry<V>>();
  private totalBytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
    private readonly budget?: ByteBudget<K, V>,
    private readonly watcher?: LruWatcher<K, V>,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The approximate bytes held (0 without a byte budget). */
  get bytes(): number {
    return this.totalBytes;
  }

  get(key: K, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= now) {
      this.totalBytes -= entry.bytes;
      this.watcher?.removed(key, entry.value);
      return undefined;
    }
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: K, value: V, now: number, ttlMs = this.ttlMs): void {
    this.delete(key);
    const bytes = this.budget ? this.budget.sizeOf(key, value) : 0;
    this.entries.set(key, { value, expiresAt: now + Math.min(ttlMs, this.ttlMs), bytes });
    this.totalBytes += bytes;
    this.watcher?.added(key, value);
    while (this.entries.size > this.maxEntries || (this.budget && this.totalBytes > this.budget.maxBytes)) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.totalBytes -= entry.bytes;
    this.watcher?.removed(key, entry.value);
  }

  clear(): void {
    if (this.watcher) for (const [key, entry] of this.entries) this.watcher.removed(key, entry.value);
    this.entries.clear();
    this.totalBytes = 0;
  }
}
