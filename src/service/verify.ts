/**
 * Key verification: the hot path every key-authenticated request takes, shared by HTTP
 * authentication, POST /v1/verify and the RPC `verify`.
 *
 * Checksum first (no storage for a malformed key; imported keys in other formats are recognised by
 * shape, keys/legacy.ts), then SHA-256, then three layers: this isolate's
 * memory, KV, D1. A record found in D1 is put in KV (never past its expiry); an unknown hash is
 * remembered briefly so repeated guesses do not reach D1. Revocation and expiry are checked on every
 * call, so a cached record cannot outlive them.
 *
 * Revocations made elsewhere reach this isolate through revocation sync: at most every
 * `revocationSyncMs` (off the request path, via waitUntil) the isolate reads the revocations newer
 * than its last look from D1's revoked_at index, and the other changes (disable, expiry, scopes,
 * resources, allow-list, rotation) from the updated_at index. A request is never answered from caches
 * whose last sync is older than twice that interval: it syncs first. So a change is honoured
 * everywhere within 2 x revocationSyncMs (10 s by default), however stale a KV copy is: a KV record
 * older than a change this isolate has seen is read from D1 instead.
 * (The change sync is interim: the D1-ordered change feed replaces both scans.)
 *
 * A warm verification makes no D1 query and no KV or D1 write; last-use times are written at most
 * once a minute per key, after the response.
 */
import type { Config } from "../config";
import { isWellFormedKey } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { type IpMatcher, compileAllowList } from "../keys/ip";
import { type AlternateCredential, alternateCredential } from "../keys/legacy";
import { grants, resourceAllowed } from "../keys/scopes";
import type { KeyRecord } from "../model";
import type { VerifyChecks, VerifyCode } from "../schemas";
import { KV_CACHE_TTL_SECONDS, KV_TTL_SECONDS, type RecordCache } from "../store/cache";
import { D1_TIMEOUT_MS } from "../store/d1";
import { TtlLru } from "../store/memory";
import { type Change, type KeyStore, type Revocation, TOUCH_BATCH } from "../store/store";
import { describeError } from "../log";

const LAST_USED_INTERVAL_MS = 60_000;
/** How long one last-use flush may keep writing, and when a flush that never finished is given up. */
const FLUSH_BUDGET_MS = 10_000;
const STALE_FLUSH_MS = 45_000;
/**
 * How long this isolate keeps a record it has read. A stored record changes only when it is revoked
 * (sync and `forget` handle that) and when its last use is written (tracked here, in
 * lastUsedWrites), so the lifetime only bounds how long a row deleted by an operator lingers; it
 * matches KV's. Each record gets 80-100% of it, so keys first read together are not all refetched
 * in the same second.
 */
const RECORD_MEMORY_MS = KV_TTL_SECONDS * 1000;
const recordLifetime = () => RECORD_MEMORY_MS * (0.8 + 0.2 * Math.random());
/**
 * How long a revocation seen by sync is remembered: longer than any stale copy can live (its KV
 * lifetime, plus the KV edge's cache of it, plus this isolate's memory of it, plus a minute's margin
 * for a deferred KV put that lands after the revoke's delete).
 */
const REVOCATION_MEMORY_MS = (KV_TTL_SECONDS + KV_CACHE_TTL_SECONDS + 60) * 1000 + RECORD_MEMORY_MS;
/**
 * How far back each sync looks before the previous one: revoked_at is stamped before the UPDATE is
 * sent, so a revocation can commit up to a D1 timeout later, and isolates' clocks differ slightly.
 */
const SYNC_OVERLAP_MS = D1_TIMEOUT_MS + 10_000;
const SYNC_PAGE = 1000;

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
  /** Read only when an audit event is written, so requests that change nothing pay nothing for it. */
  readonly origin?: () => Origin;
}

export interface Verification {
  readonly code: VerifyCode;
  /** The key's record when it was found, whatever the code. */
  readonly record: KeyRecord | null;
}

/** What a presented key is looked up by. */
interface Credential {
  readonly hash: string;
  /** Set when the key was presented in another form than a bare latchkey key. */
  readonly alternate: AlternateCredential | null;
}

/** Caches and sync bookkeeping that live as long as the isolate. */
export class IsolateCache {
  readonly records = new TtlLru<string, KeyRecord>(10_000, RECORD_MEMORY_MS);
  readonly unknown = new TtlLru<string, true>(10_000, 10_000);
  /** hash -> revoked_at, for revocations learnt by sync or made here. */
  readonly revoked = new Map<string, number>();
  /** hash -> updated_at, for changes learnt by sync or made here: older copies (in KV) are stale. */
  readonly changed = new Map<string, number>();
  readonly lastUsedWrites = new TtlLru<string, number>(10_000, LAST_USED_INTERVAL_MS);
  /** Key ids whose use is due to be written, with when; written by at most one flush at a time. */
  readonly pendingUses = new Map<string, number>();
  /** When the flush in flight started (0: none). */
  flushStartedAt = 0;
  /** When the last successful sync started (0: never). */
  lastSyncAt = 0;
  syncStartedAt = 0;

  clear(): void {
    this.records.clear();
    this.unknown.clear();
    this.revoked.clear();
    this.changed.clear();
    this.lastUsedWrites.clear();
    this.pendingUses.clear();
    this.flushStartedAt = 0;
    this.lastSyncAt = 0;
    this.syncStartedAt = 0;
  }
}

/** The one cache of this isolate. */
export const isolateCache = new IsolateCache();

/** Compiled allow-lists, by the record's list: compiled once per record read, not per verification. */
const allowLists = new WeakMap<readonly string[], IpMatcher>();

function ipAllowed(allowedIps: readonly string[], ip: string | undefined): boolean {
  let matcher = allowLists.get(allowedIps);
  if (!matcher) {
    matcher = compileAllowList(allowedIps);
    allowLists.set(allowedIps, matcher);
  }
  return matcher(ip);
}

export class Verifier {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly local: IsolateCache = isolateCache,
  ) {}

  async verify(key: string, options: VerifyChecks = {}): Promise<Verification> {
    const credential = await this.credential(key);
    if (!credential) return { code: "MALFORMED", record: null };
    const now = Date.now();
    if (now - this.local.lastSyncAt >= this.deps.config.revocationSyncMs) await this.syncIfDue(now);

    const record = this.local.records.get(credential.hash, now) ?? (await this.lookup(credential.hash, now));
    return this.judge(credential, record, options, now);
  }

  /**
   * The hash to look up: of the key itself when it is a bare latchkey key, else of the secret of its
   * Sanctum form or of an imported key in an enabled format; null (MALFORMED, no storage) otherwise.
   */
  private async credential(key: string): Promise<Credential | null> {
    if (isWellFormedKey(key, this.deps.config.keyPrefix)) return { hash: await sha256Hex(key), alternate: null };
    const alternate = alternateCredential(key, this.deps.config.keyPrefix, this.deps.config.legacyFormats);
    return alternate ? { hash: await sha256Hex(alternate.material), alternate } : null;
  }

  /**
   * The verdict this isolate's memory alone can give, or null when it would take storage (a key not
   * in memory, or memory too long unsynced to trust). For clients over a failure limit
   * (http/limits.ts): no KV, no D1, no sync.
   */
  async fromMemory(key: string, options: VerifyChecks = {}): Promise<Verification | null> {
    const credential = await this.credential(key);
    if (!credential) return { code: "MALFORMED", record: null };
    const now = Date.now();
    if (now - this.local.lastSyncAt >= 2 * this.deps.config.revocationSyncMs) return null;
    const record = this.local.records.get(credential.hash, now);
    if (record) return this.judge(credential, record, options, now);
    return this.local.unknown.get(credential.hash, now) ? { code: "NOT_FOUND", record: null } : null;
  }

  private judge(
    { hash, alternate }: Credential,
    record: KeyRecord | null,
    options: VerifyChecks,
    now: number,
  ): Verification {
    if (!record) return { code: "NOT_FOUND", record: null };
    // A key counts only in its own format (and, in the Sanctum form, under its own id).
    if ((record.format ?? null) !== (alternate?.format ?? null) || (alternate?.keyId ?? record.id) !== record.id) {
      return { code: "NOT_FOUND", record: null };
    }
    if (record.revokedAt !== null || this.local.revoked.has(hash)) return { code: "REVOKED", record };
    if (!record.enabled) return { code: "DISABLED", record };
    if (record.expiresAt !== null && record.expiresAt <= now) return { code: "EXPIRED", record };
    // Keys without an allow-list pay one comparison.
    if (record.allowedIps !== null && !ipAllowed(record.allowedIps, options.ip)) {
      return { code: "IP_NOT_ALLOWED", record };
    }
    if (options.scope !== undefined && !grants(record.scopes, options.scope)) {
      return { code: "INSUFFICIENT_SCOPE", record };
    }
    if (options.resource !== undefined && !resourceAllowed(record.resources, options.resource)) {
      return { code: "RESOURCE_NOT_ALLOWED", record };
    }
    this.noteUse(record, now);
    return { code: "VALID", record };
  }

  /** A key was just created here: make it warm at once. */
  remember(record: KeyRecord): void {
    const now = Date.now();
    this.local.unknown.delete(record.hash);
    this.local.records.set(record.hash, record, now, recordLifetime());
    this.deps.defer(this.deps.cache.put(record, now));
  }

  /** A key was just revoked here: the very next request at this location must fail. */
  async forget(record: KeyRecord): Promise<void> {
    this.local.revoked.set(record.hash, record.revokedAt ?? Date.now());
    this.local.records.delete(record.hash);
    await this.deps.cache.delete(record.hash);
  }

  /**
   * A key's settings were just changed here: the next request at this location sees the new record,
   * and KV's copy goes, so other isolates read D1 (which sync makes them do within the bound anyway).
   */
  async changed(record: KeyRecord): Promise<void> {
    const now = Date.now();
    this.local.changed.set(record.hash, record.updatedAt ?? now);
    this.local.records.set(record.hash, record, now, recordLifetime());
    await this.deps.cache.delete(record.hash);
  }

  /** After a miss in this isolate's records: its negative cache, then KV, then D1. */
  private async lookup(hash: string, now: number): Promise<KeyRecord | null> {
    if (this.local.unknown.get(hash, now)) return null;

    const cached = await this.deps.cache.get(hash);
    if (cached && (cached.updatedAt ?? 0) >= (this.local.changed.get(hash) ?? 0)) {
      this.local.records.set(hash, cached, now, recordLifetime());
      return cached;
    }

    const stored = await this.deps.store.findByHash(hash);
    if (!stored) {
      this.local.unknown.set(hash, true, now);
      return null;
    }
    this.local.records.set(hash, stored, now, recordLifetime());
    this.deps.defer(this.deps.cache.put(stored, now));
    return stored;
  }

  private noteUse(record: KeyRecord, now: number): void {
    const last = Math.max(record.lastUsedAt ?? 0, this.local.lastUsedWrites.get(record.id, now) ?? 0);
    if (now - last < LAST_USED_INTERVAL_MS) return;
    this.local.lastUsedWrites.set(record.id, now, now);
    this.local.pendingUses.set(record.id, now);
    // A flush cancelled with its request (waitUntil's 30 s) never clears its mark: start anew after a while.
    if (now - this.local.flushStartedAt > STALE_FLUSH_MS) this.deps.defer(this.flushUses(now));
  }

  /**
   * Writes pending uses after the response. Coalesced: while one write is in flight, the keys that
   * fall due meanwhile wait and go together in the next, so an isolate under load makes one D1 write
   * per round trip, not one per key; alone, a use is written at once.
   */
  private async flushUses(now: number): Promise<void> {
    const pending = this.local.pendingUses;
    this.local.flushStartedAt = now;
    try {
      // Bounded in time, well inside the waitUntil of the request that runs it; what is left waits
      // for the next use to start another flush.
      while (pending.size > 0 && Date.now() - now < FLUSH_BUDGET_MS) {
        const batch: string[] = [];
        let at = 0;
        for (const [id, usedAt] of pending) {
          batch.push(id);
          at = Math.max(at, usedAt);
          if (batch.length === TOUCH_BATCH) break;
        }
        for (const id of batch) pending.delete(id);
        await this.deps.store.touchLastUsed(batch, at, LAST_USED_INTERVAL_MS);
      }
    } catch (error) {
      pending.clear();
      console.warn(`latchkey: last-used update failed: ${describeError(error)}`);
    } finally {
      this.local.flushStartedAt = 0;
    }
  }

  private async syncIfDue(now: number): Promise<void> {
    const interval = this.deps.config.revocationSyncMs;
    const age = now - this.local.lastSyncAt;
    if (age < interval) return;
    // One attempt per interval: while one runs, or after one failed (D1 down), serve from the caches.
    if (now - this.local.syncStartedAt < interval) return;
    if (age < 2 * interval) {
      // Due but within the bound: refresh after the response.
      this.deps.defer(this.syncRevocations(now));
      return;
    }
    // Too stale to trust the caches: sync before answering.
    await this.syncRevocations(now);
  }

  /** Pulls revocations and changes newer than the last look from D1. Failures are logged, never thrown. */
  async syncRevocations(now: number = Date.now()): Promise<void> {
    this.local.syncStartedAt = now;
    const since = this.local.lastSyncAt ? this.local.lastSyncAt - SYNC_OVERLAP_MS : now - REVOCATION_MEMORY_MS;
    let after: Revocation = { revokedAt: since, hash: "" };
    let changedAfter: Change = { updatedAt: since, hash: "" };
    try {
      for (;;) {
        const page = await this.deps.store.revokedAfter(after, SYNC_PAGE);
        for (const { hash, revokedAt } of page) {
          this.local.revoked.set(hash, revokedAt);
          this.local.records.delete(hash);
        }
        if (page.length < SYNC_PAGE) break;
        after = page[page.length - 1]!;
      }
      for (;;) {
        const page = await this.deps.store.changedAfter(changedAfter, SYNC_PAGE);
        for (const change of page) this.noteChange(change);
        if (page.length < SYNC_PAGE) break;
        changedAfter = page[page.length - 1]!;
      }
      this.local.lastSyncAt = now;
      for (const [hash, revokedAt] of this.local.revoked) {
        if (revokedAt < now - REVOCATION_MEMORY_MS) this.local.revoked.delete(hash);
      }
      for (const [hash, updatedAt] of this.local.changed) {
        if (updatedAt < now - REVOCATION_MEMORY_MS) this.local.changed.delete(hash);
      }
    } catch (error) {
      console.warn(`latchkey: revocation sync failed: ${describeError(error)}`);
    }
  }

  /** A change seen by sync: drop this isolate's copy if older, and distrust older copies in KV. */
  private noteChange({ hash, updatedAt }: Change): void {
    if ((this.local.changed.get(hash) ?? 0) >= updatedAt) return;
    this.local.changed.set(hash, updatedAt);
    const held = this.local.records.get(hash, Date.now());
    if (held && (held.updatedAt ?? 0) < updatedAt) this.local.records.delete(hash);
  }
}
