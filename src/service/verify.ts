/**
 * Key verification: the hot path every key-authenticated request takes, shared by HTTP
 * authentication, POST /v1/verify and the RPC `verify`.
 *
 * Checksum first (no storage for a malformed key; imported keys in other formats are recognised by
 * shape, keys/legacy.ts), then SHA-256, then three layers: this isolate's
 * memory, KV, D1. A record found in D1 is put in KV (never past its expiry); an unknown hash is
 * remembered briefly so repeated guesses do not reach D1. Revocation and expiry are checked on every
 * call, so a cached record cannot outlive them. Memory and KV hold the compact record only (no name,
 * no metadata), and memory is bounded by approximate bytes.
 *
 * Changes made elsewhere reach this isolate through the change feed (service/feed.ts): at most every
 * `revocationSyncMs` (after the response, via waitUntil) the isolate reads the feed after its
 * position and drops the records that changed (revocation, disable, expiry, scopes, resources, allow-list:
 * D1 triggers append each to the feed, migrations 0002 and 0005). A request is never answered from caches whose last
 * sync is older than twice that interval: it syncs first, waiting at most SYNC_WAIT_MS. So while D1
 * answers, a change is honoured everywhere within 2 x revocationSyncMs (10 s by default), however
 * stale a KV copy is. When the isolate cannot sync for longer than `maxStalenessMs`, it stops trusting
 * what it learnt before: a key is answered only from a D1 read made since (so 503 while D1 is down).
 *
 * A warm verification makes no D1 query and no KV or D1 write; last-use times are written at most
 * once a minute per key, gathered per isolate and written after the response (service/last-use.ts),
 * and outcome counts for the usage report in one batch per isolate about every 20 s, by work the first
 * count defers (service/usage-tally.ts).
 *
 * A key with rate limits or credits (keys/limit-arithmetic.ts) then makes one call to its chain's Durable Object
 * counter (store/counter.ts), which applies every limit at once; a key without them never reaches a
 * counter. Its owner's per-customer limits travel in its record and are spent in the same one call
 * (service/metering.ts). Outcomes are counted per key in the isolate and written in batches (service/usage-tally.ts).
 */
import type { Config } from "../config";
import { ipAllowed } from "../keys/ip";
import { sameScheme } from "../keys/legacy";
import { checkLegacySecret, upgradedCheck } from "./legacy-check";
import { findHmacKey, hmacInMemory } from "./hmac-upgrade";
import { type Credential, credentialOf, formOf } from "./credential";
import { grants, resourceAllowed } from "../keys/scopes";
import type { UsageVerdict } from "../keys/limit-arithmetic";
import { type CompactRecord, compact } from "../model";
import type { VerifyChecks, VerifyCode } from "../schemas";
import type { RecordCache } from "../store/cache";
import { type KeyStore, StorageUnavailableError } from "../store/store";
import { withTimeout } from "../store/timeout";
import type { UsageCounters } from "../store/counter";
import type { UsageStore } from "../store/usage-counts";
import type { OwnerLimitsStore } from "../store/owner-limits";
import { describeError, log } from "../log";
import type { FeedState } from "./feed";
import { type ShardFeeds, isolateFeed } from "./shard-feed";
import { isMetered, spend } from "./metering";
import { type MemoryRecord, recordLifetime } from "./memory-record";
import { IsolateCache, isolateCache } from "./isolate-cache";
import { malformedOrRoot } from "./root-rules";

/**
 * How long a request waits for a sync it needs (the isolate's last one is older than twice the
 * interval): well under D1's 5 s timeout. A sync that takes longer goes on after the response.
 */
export const SYNC_WAIT_MS = 1000;

/** Where a call came from, for the audit log: over HTTP, CF-Connecting-IP and User-Agent; over RPC, neither. */
export interface Origin {
  readonly ip: string | null;
  readonly userAgent: string | null;
}

export interface ServiceDeps {
  readonly store: KeyStore;
  readonly cache: RecordCache;
  readonly config: Config;
  /** Runs work after the response (ctx.waitUntil). */
  readonly defer: (work: Promise<unknown>) => void;
  /** Counts key creations per owner (the KEY_CREATION_LIMITER binding); absent: no limit. */
  readonly creationLimiter?: RateLimit | undefined;
  /** Told every verdict, once per verification (the Analytics Engine counters); optional. */
  readonly onVerified?: ((code: VerifyCode, record: CompactRecord | null) => void) | undefined;
  /** Read only when an audit event is written, so requests that change nothing pay nothing for it. */
  readonly origin?: () => Origin;
  /** The Durable Object counters of keys with limits (absent: such keys cannot be verified, 503). */
  readonly counters?: UsageCounters;
  /** Where verification counts go (absent: not counted). */
  readonly usageStore?: UsageStore;
  /** Owners' per-customer limits (absent: a stored key is made warm without them). */
  readonly ownerLimits?: OwnerLimitsStore;
}

export interface Verification {
  readonly code: VerifyCode;
  /** The key's record when it was found and the code is about this request, not the key's life. */
  readonly record: CompactRecord | null;
  /** The key's id when it is known, whatever the code. */
  readonly keyId: string | null;
  /** The key's limits after this verification, for a key with limits whose other checks passed. */
  readonly usage?: UsageVerdict;
}

export { IsolateCache, isolateCache };

const answer = (code: VerifyCode, record: CompactRecord | null, keyId = record?.id ?? null): Verification => ({
  code,
  record,
  keyId,
});

export class Verifier {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly local: IsolateCache = isolateCache,
  ) {}

  private get feed(): FeedState | ShardFeeds {
    return isolateFeed(this.local, this.deps.config.shards.count); // one database's, or every shard's
  }
  /** The verdict on `key`, counted once (onVerified) whatever the outcome. */
  async verify(key: string, options: VerifyChecks = {}): Promise<Verification> {
    const verification = await this.verdict(key, options);
    this.deps.onVerified?.(verification.code, verification.record);
    return verification;
  }

  private async verdict(key: string, options: VerifyChecks): Promise<Verification> {
    const credential = await this.credential(key);
    if (!credential) return answer(malformedOrRoot(key, this.deps.config), null);
    const now = Date.now();
    const feed = this.feed;
    if (now - feed.lastSyncAt >= this.deps.config.revocationSyncMs) await this.syncIfDue(now);

    const find = (hash: string) => this.find(hash, credential, now);
    const found = credential.hmac
      ? await findHmacKey(find, this.local.unknown, now, this.upgradeHost, credential.hmac)
      : await find(credential.hash);
    if (typeof found === "string") return this.meter(answer("REVOKED", null, found), options, now);
    let record = found;
    if (credential.bcrypt && record && !(await checkLegacySecret(this.upgradeHost, credential.bcrypt, record))) {
      record = undefined;
    }
    return this.meter(this.judge(credential, record ?? null, options, now), options, now);
  }

  /** The record under `hash`: this isolate's memory, else (unless known revoked: its key's id) KV, then D1. */
  private async find(hash: string, credential: Credential, now: number): Promise<CompactRecord | string | undefined> {
    const feed = this.feed;
    const entry = this.local.records.get(hash, now);
    if (entry && (now - feed.lastSyncAt <= this.deps.config.maxStalenessMs || this.stillFresh(hash, entry, now))) {
      return entry.record;
    }
    // A bcrypt key is found by its lookup id: REVOKED only after its secret matched.
    const known = feed.change(hash);
    if (known?.revoked && !credential.bcrypt) return known.keyId;
    return this.lookup(hash, now);
  }

  /** What `key` is looked up by (service/credential.ts); null: MALFORMED, no storage. */
  private credential(key: string, form = formOf(key, this.deps.config)): Promise<Credential | null> {
    return credentialOf(key, form, this.deps.config.legacyHmacPepper);
  }

  /** What a legacy key's upgrade needs (service/legacy-check.ts, service/hmac-upgrade.ts). */
  private get upgradeHost() {
    const { store, origin } = this.deps;
    return { store, origin, changed: this.changed.bind(this), moved: this.moved.bind(this) };
  }

  /**
   * The verdict this isolate's memory alone can give, or null when it would take storage (a key not
   * in memory, or memory too long unsynced to trust). For clients over a failure limit
   * (http/limits.ts): no KV, no D1, no sync. `vouchOnly`: the caller needs only a verdict about a key
   * memory holds (authentication, where every other answer is the same 429), so a well-formed key of a
   * scheme memory holds no record of is null at once, without hashing it.
   */
  async fromMemory(key: string, options: VerifyChecks = {}, vouchOnly = false): Promise<Verification | null> {
    const verification = await this.memoryVerdict(key, options, vouchOnly);
    if (verification) this.deps.onVerified?.(verification.code, verification.record);
    return verification;
  }

  private async memoryVerdict(key: string, options: VerifyChecks, vouchOnly: boolean): Promise<Verification | null> {
    const form = formOf(key, this.deps.config);
    if (vouchOnly && form !== undefined && !this.local.schemes.holds(form?.scheme ?? null)) return null;
    const credential = await this.credential(key, form);
    if (!credential) return answer(malformedOrRoot(key, this.deps.config), null);
    const now = Date.now();
    const feed = this.feed;
    if (now - feed.lastSyncAt >= 2 * this.deps.config.revocationSyncMs) return null;
    const known = feed.change(credential.hash);
    if (known?.revoked && !credential.bcrypt) return this.meter(answer("REVOKED", null, known.keyId), options, now);
    const inMemory = (hash: string) => this.local.records.get(hash, now)?.record;
    const record = credential.hmac ? hmacInMemory(credential.hmac, inMemory) : inMemory(credential.hash);
    // The bcrypt check is not a memory verdict: only an upgraded key's digest is compared here.
    const matches = record && credential.bcrypt ? upgradedCheck(credential.bcrypt, record) : true;
    if (matches !== true) return matches === null ? null : answer("NOT_FOUND", null);
    if (record) return this.meter(this.judge(credential, record, options, now), options, now);
    const unknown = (hash: string | null) => hash === null || this.local.unknown.get(hash, now) === true;
    return unknown(credential.hash) && unknown(credential.hmac?.digest ?? null) ? answer("NOT_FOUND", null) : null;
  }

  private judge(
    { alternate }: Credential,
    record: CompactRecord | null,
    options: VerifyChecks,
    now: number,
  ): Verification {
    if (!record) return answer("NOT_FOUND", null);
    // A key counts only in its own format (and, in the Sanctum form, under its own id).
    if (!sameScheme(record.format, alternate) || (alternate?.keyId ?? record.id) !== record.id) {
      return answer("NOT_FOUND", null);
    }
    if (record.revokedAt !== null) return answer("REVOKED", null, record.id);
    if (record.expiresAt !== null && record.expiresAt <= now) return answer("EXPIRED", null, record.id);
    if (!record.enabled) return answer("DISABLED", null, record.id);
    // Keys without an allow-list pay one comparison.
    if (record.allowedIps !== null && !ipAllowed(record.allowedIps, options.ip)) {
      return answer("IP_NOT_ALLOWED", null, record.id);
    }
    if (options.scope !== undefined && !grants(record.scopes, options.scope)) {
      return answer("INSUFFICIENT_SCOPE", record);
    }
    if (options.resource !== undefined && !resourceAllowed(record.resources, options.resource)) {
      return answer("RESOURCE_NOT_ALLOWED", record);
    }
    this.noteUse(record, now);
    return answer("VALID", record);
  }

  /**
   * Applies the key's limits to a VALID verdict (one counter call; none for a key without limits) and
   * counts the outcome of every verdict about a known key (dead keys included, by id).
   */
  private meter(verification: Verification, options: VerifyChecks, now: number): Verification | Promise<Verification> {
    const { record, keyId } = verification;
    if (keyId === null) return verification;
    if (record && verification.code === "VALID" && isMetered(record)) return this.limited(record, options, now);
    this.countOutcome(keyId, verification.code, now);
    return verification;
  }

  /** One counter call applies every limit of the key; a failing counter fails the verification (503). */
  private async limited(record: CompactRecord, options: VerifyChecks, now: number): Promise<Verification> {
    const counters = this.deps.counters;
    if (!counters) throw new StorageUnavailableError("usage counters are not bound (USAGE_COUNTER)");
    const usage = await spend(counters, record, options.cost ?? 1);
    this.countOutcome(record.id, usage.code, now);
    return { code: usage.code, record, keyId: record.id, usage };
  }

  /** Counted in the isolate (service/usage-tally.ts); the count that opens a window or fills a batch defers its write. */
  private countOutcome(keyId: string, code: VerifyCode, now: number): void {
    const store = this.deps.usageStore;
    const work = store ? this.local.usage.add(keyId, code, now, store) : null;
    if (work) this.deps.defer(work);
  }

  /** A key was just stored here (at feed position `seq`): make it warm at once. */
  remember(stored: CompactRecord, seq: number): void {
    const now = Date.now();
    const record = compact(stored);
    this.local.unknown.delete(record.hash);
    this.local.records.set(record.hash, { record, seq, checkedAt: now }, now, recordLifetime());
    this.deps.defer(this.deps.cache.put({ record, seq }, now));
  }

  /** A key was just stored here without being made warm (an import): it is no longer unknown. */
  known(hash: string): void {
    this.local.unknown.delete(hash);
  }

  /**
   * A key was just revoked here: the very next request at this location must fail. (Other isolates
   * learn it from the feed, which the revoking statement appended to.)
   */
  async forget(record: CompactRecord, deleteFromKv = true): Promise<void> {
    const feed = this.feed;
    feed.note(record.hash, { seq: feed.seq, keyId: record.id, revoked: true }, Date.now());
    this.local.records.delete(record.hash);
    if (deleteFromKv) await this.deps.cache.delete(record.hash);
  }

  /**
   * A key's settings were just changed here (the write was at feed position `seq`): the next request at
   * this location sees the new record, and KV's copy goes unless `deleteFromKv` is false (other
   * isolates learn of it from the feed, which makes any KV copy untrusted).
   */
  async changed(stored: CompactRecord, seq: number, deleteFromKv = true): Promise<void> {
    const now = Date.now();
    const record = compact(stored);
    const feed = this.feed;
    feed.note(record.hash, { seq, keyId: record.id, revoked: false }, now);
    this.local.records.set(record.hash, { record, seq, checkedAt: now }, now, recordLifetime());
    if (deleteFromKv) await this.deps.cache.delete(record.hash);
  }

  /** A key's stored hash moved from `from` to the record's here (an upgrade): the old one finds nothing. */
  async moved(from: string, stored: CompactRecord, seq: number): Promise<void> {
    this.feed.note(from, { seq, keyId: stored.id, revoked: false }, Date.now());
    this.local.records.delete(from);
    this.local.unknown.delete(stored.hash);
    await Promise.all([this.deps.cache.delete(from), this.changed(stored, seq, false)]);
  }

  /**
   * Past the staleness bound (no successful sync for that long), a record in memory counts only if
   * this isolate read it from D1 within the bound; otherwise it is dropped and read again.
   */
  private stillFresh(hash: string, entry: MemoryRecord, now: number): boolean {
    if (now - entry.checkedAt <= this.deps.config.maxStalenessMs) return true;
    this.local.records.delete(hash);
    return false;
  }

  /** After a miss in this isolate's records: its negative cache, then KV (unless stale), then D1. */
  private async lookup(hash: string, now: number): Promise<CompactRecord | undefined> {
    if (this.local.unknown.get(hash, now)) return undefined;
    const feed = this.feed;

    if (now - feed.lastSyncAt <= this.deps.config.maxStalenessMs) {
      const cached = await this.deps.cache.get(hash);
      // Checked after the await: a sync may have applied a change to this key meanwhile.
      if (cached && feed.trusts(hash, cached.seq, "kv")) {
        this.local.records.set(hash, { record: cached.record, seq: cached.seq, checkedAt: 0 }, now, recordLifetime());
        return cached.record;
      }
    }

    const stored = await this.deps.store.findByHash(hash);
    if (!stored) {
      this.local.unknown.set(hash, true, now);
      return undefined;
    }
    const record = compact(stored.record);
    if (feed.trusts(hash, stored.seq, "d1")) {
      this.local.records.set(hash, { record, seq: stored.seq, checkedAt: now }, now, recordLifetime());
    }
    this.deps.defer(this.deps.cache.put({ record, seq: stored.seq }, now));
    return record;
  }

  /** A successful use: queued for its last-use write (service/last-use.ts), which runs after the response. */
  private noteUse(record: CompactRecord, now: number): void {
    const work = this.local.lastUses.note(record.id, record.lastUsedAt, now, this.deps.store);
    if (work) this.deps.defer(work);
  }

  private async syncIfDue(now: number): Promise<void> {
    const interval = this.deps.config.revocationSyncMs;
    const feed = this.feed;
    // One attempt per interval: while one runs, or after one failed (D1 down), serve from the caches
    // (within the staleness bound).
    if (feed.running || now - feed.attemptedAt < interval) return;
    const sync = this.syncFeed(now);
    this.deps.defer(sync);
    // Too stale to trust the caches: wait for it, boundedly; within the bound it runs after the response.
    if (now - feed.lastSyncAt >= 2 * interval) {
      await withTimeout(sync, SYNC_WAIT_MS, "feed sync").catch(() => {});
    }
  }

  /**
   * Reads the feed now, unless a read is already running: after a write that changed several keys at
   * once (a key chain's limits), so this isolate drops its copies of all of them before answering again.
   */
  async catchUp(): Promise<void> {
    if (!this.feed.running) await this.syncFeed();
  }

  /** Applies the feed after this isolate's position. Failures are logged, never thrown. */
  async syncFeed(now: number = Date.now()): Promise<void> {
    const feed = this.feed;
    feed.attemptedAt = now;
    feed.running = true;
    try {
      await feed.sync(
        this.deps.store,
        now,
        (hash) => this.local.records.delete(hash),
        () => this.local.records.clear(),
      );
      feed.lastSyncAt = now;
      feed.prune(now);
    } catch (error) {
      log("warn", "change_feed_sync_failed", { error: describeError(error) });
    } finally {
      feed.running = false;
    }
  }
}
