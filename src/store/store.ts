/**
 * The store of record behind a small interface, so the service never sees SQL and a benchmark or a
 * future backend can supply its own. D1 implements it in d1.ts (with the d1-*.ts modules).
 */
import type { AuditAction, AuditEvent, KeyRecord, Owner } from "../model";

/** What `status` selects: see ListPage. */
export type KeyStatus = "active" | "revoked" | "expired";

export interface ListPage {
  readonly owners: readonly Owner[];
  readonly limit: number;
  readonly includeRevoked: boolean;
  /** Start after this (created_at, id) position; newest first. */
  readonly after: { readonly createdAt: number; readonly id: string } | null;
  /** Only keys with this `created_by`. */
  readonly createdBy?: string | undefined;
  /** Only keys of this owner type. */
  readonly ownerType?: Owner["type"] | undefined;
  /**
   * Replaces includeRevoked when set: `active` = not revoked and not expired at `now`; `revoked` =
   * revoked (whatever its expiry); `expired` = not revoked and expired at `now`.
   */
  readonly status?: KeyStatus | undefined;
  readonly now: number;
}

/** One entry of the change feed: the key with this hash changed; `seq` is D1's order of commits. */
export interface KeyChange {
  readonly seq: number;
  readonly hash: string;
  readonly keyId: string;
  /** `revoked` (for good) or `updated` (re-read it). */
  readonly kind: "revoked" | "updated";
}

/** A record with the feed position it is current as of: every change numbered up to `seq` is in it. */
export interface StampedRecord {
  readonly record: KeyRecord;
  readonly seq: number;
}

/** Why a conditional insert stored nothing: the key asking for it is no longer live, or the owner is at its quota. */
export type InsertRefusal = "parent_not_live" | "owner_quota";

/**
 * The rows a write reaches beyond the key it names: `chain`, the live keys sharing usage counters
 * (`root`: the chain's id, usage_id or the first key's id); `tree`, the key `root` and the live keys of
 * its lineage (by parent_id and by the key that asked for each, created_by); `chain-lineage`, the live
 * keys of the lineages of every live key of the chain `root` (what a change of the chain's limits binds).
 */
export type Reach = "chain" | "tree" | "chain-lineage";

/** What a guarded write compares, in its own transaction, with what was read: it writes nothing if they differ. */
export interface ReachGuard {
  readonly reach: Reach;
  readonly root: string;
  /** The (id, updated_at) of every unrevoked row reached, as read. */
  readonly fingerprint: string;
}

export interface InsertLimits {
  /** The owner may hold at most this many live (not revoked, not expired at `now`) keys. */
  readonly maxKeysPerOwner: number;
  readonly now: number;
}

/** A record's settings that an update may change, each only when present. */
export type KeyChanges = Partial<
  Pick<KeyRecord, "name" | "metadata" | "enabled" | "expiresAt" | "scopes" | "resources" | "allowedIps" | "limits">
>;

/** Who revokes and from where: each newly revoked key gets a `revoked` audit event made of this. */
export type RevocationOrigin = Pick<AuditEvent, "actor" | "ip" | "userAgent">;

export interface EventPage {
  /** The owners whose events to read; `keyId` narrows to one of their keys. */
  readonly owners: readonly Owner[];
  readonly keyId: string | null;
  readonly action: AuditAction | null;
  /** Events at or after `since` and before `until` (epoch ms), when set. */
  readonly since: number | null;
  readonly until: number | null;
  readonly limit: number;
  /** Start after this (at, id) position; newest first. */
  readonly after: { readonly at: number; readonly id: string } | null;
}

/** The most keys one touchLastUsed call takes (D1 binds at most 100 parameters per statement). */
export const TOUCH_BATCH = 90;

/**
 * An Idempotency-Key claimed by the insert that creates a key: stored in the same atomic write, so a
 * second insert with the same (caller, keyHash) cannot also succeed. A claim made before
 * `expiredBefore` is forgotten and may be made again.
 */
export interface IdempotencyClaim {
  readonly caller: string;
  readonly keyHash: string;
  readonly requestHash: string;
  readonly expiredBefore: number;
}

/** The claim an insert found already made (and not expired): the insert stored nothing. */
export class IdempotencyConflict extends Error {
  override readonly name = "IdempotencyConflict";
  constructor(
    readonly keyId: string,
    readonly requestHash: string,
  ) {
    super("The Idempotency-Key was already claimed");
  }
}

/**
 * The change feed is written by the store itself, in the statement that makes the change (in D1, by
 * triggers: migrations/0002_key_changes.sql), so no mutation can forget it and a change an operator
 * makes by hand is fed too. A new kind of mutation needs no feed call of its own; it needs its
 * verdict-relevant columns covered by a trigger that appends `updated`.
 */
export interface KeyStore {
  /**
   * Stores a new key and its audit event in one atomic write, only if the key that asks for it
   * (`mintingKeyId(record)`) is still live and enabled and its owner holds fewer than the limit of live keys, with the
   * Idempotency-Key `claim` when given: the feed position it is current as of, or why not. Throws
   * IdempotencyConflict (storing nothing) when the claim was already made.
   */
  insert(
    record: KeyRecord,
    event: AuditEvent,
    limits: InsertLimits,
    claim?: IdempotencyClaim,
  ): Promise<{ seq: number } | { refused: InsertRefusal }>;
  findByHash(hash: string): Promise<StampedRecord | null>;
  /**
   * Stores the records in one atomic write, skipping any whose hash is already stored, each with its
   * audit event (`events[i]` for `records[i]`, written only with it): for each record, in order,
   * whether it was inserted. Nothing is stored (a refusal) unless the key asking (the records'
   * created_by) is live and the owner holds at most the limit minus the batch's size of live keys.
   */
  insertNew(
    records: readonly KeyRecord[],
    events: readonly AuditEvent[],
    limits: InsertLimits,
  ): Promise<{ inserted: boolean[] } | { refused: InsertRefusal }>;
  /** The unrevoked rows `reach` covers from `root` (ordered by id), and the guard that pins them for a write. */
  reach(reach: Reach, root: string): Promise<{ records: KeyRecord[]; guard: ReachGuard }>;
  findById(id: string): Promise<KeyRecord | null>;
  list(page: ListPage): Promise<KeyRecord[]>;
  /**
   * Applies `changes` and `event` in one atomic write, stamping updated_at with the event's time, if
   * the key is still unrevoked and unchanged since `current` was read (optimistic concurrency, so an
   * event's old values are always the ones it replaced): the feed position after the write, or null,
   * with nothing written, when it was not. With `guards`, throws ConcurrentChangeError (writing nothing)
   * when the rows they pin changed since they were read.
   */
  update(
    current: KeyRecord,
    changes: KeyChanges,
    event: AuditEvent,
    guards?: readonly ReachGuard[],
  ): Promise<number | null>;
  /** The id of the key that replaced key `id` by rotation, or null when none did. */
  replacementOf(id: string): Promise<string | null>;
  /**
   * Rotation in one atomic write: the old key (if still unrevoked and unchanged since `current` was
   * read) gets `expiresAt`, the replacement is stored, and both events are written: the feed position
   * after the write, or null, with nothing written, when the old key had changed. Like an insert, it
   * writes nothing (a refusal) unless the key asking (the replacement's created_by) is live and, when
   * the old key stays live past `limits.now`, the owner holds fewer than the limit of live keys.
   */
  rotate(
    current: KeyRecord,
    expiresAt: number | null,
    replacement: KeyRecord,
    events: readonly [rotated: AuditEvent, created: AuditEvent],
    limits: InsertLimits,
  ): Promise<{ seq: number } | { refused: InsertRefusal } | null>;
  /** Audit events, newest first. */
  listEvents(page: EventPage): Promise<AuditEvent[]>;
  /** Deletes at most `limit` events older than `before`; how many it deleted. */
  purgeEvents(before: number, limit: number): Promise<number>;
  /**
   * Marks the key revoked at `at` unless it already is, and with `cascade` every key descending from it
   * (by parentId), in one atomic write; the stored records afterwards, the key's own first (none if
   * it does not exist). Every newly revoked key is appended to the feed, and gets a `revoked` audit
   * event from `origin`, in the same write. A cascade follows the lineage (parent_id and created_by).
   * With `guard`, throws ConcurrentChangeError (writing nothing) when the rows it pins changed.
   */
  revoke(id: string, at: number, cascade: boolean, origin: RevocationOrigin, guard?: ReachGuard): Promise<KeyRecord[]>;
  /** The feed after `seq`, in order, at most `limit` entries. */
  changesAfter(seq: number, limit: number): Promise<KeyChange[]>;
  /**
   * The newest `limit` entries of the feed, in order (fewer: the feed holds no others); with several
   * databases (sharding by owner), of database `shard`.
   */
  latestChanges(limit: number, shard?: number): Promise<KeyChange[]>;
  /**
   * Records use of the keys `ids` (at most TOUCH_BATCH) at `at`, in one write, except where a use less
   * than `minIntervalMs` earlier is already recorded.
   */
  touchLastUsed(ids: readonly string[], at: number, minIntervalMs: number): Promise<void>;
  /**
   * Replaces a bcrypt-imported key's legacy hash `from` by `to` (the SHA-256 of the whole token), with
   * its `upgraded` event, only if it still holds `from`: the feed position after the write, or null
   * when another verification upgraded it first (nothing written).
   */
  upgradeLegacyHash(id: string, from: string, to: string, event: AuditEvent): Promise<number | null>;
  /**
   * Stores an HMAC-imported key under `sha` (the SHA-256 of the whole token) instead of its HMAC
   * `digest`, with its `upgraded` event, only if it is still stored under `digest`: the feed position
   * after the write, or null when nothing was written.
   */
  upgradeHmacDigest(id: string, digest: string, sha: string, event: AuditEvent): Promise<number | null>;
  /** The HMAC-imported key first stored under `digest`, once upgraded (no longer found by it); else null. */
  findUpgradedHmac(digest: string): Promise<KeyRecord | null>;
}

/** What operators need of the store of record besides keys: readiness and the purge. D1 implements it. */
export interface StoreMaintenance {
  /** Resolves when the store answers with the schema `latestMigration` made; else throws. */
  checkSchema(latestMigration: string): Promise<void>;
  /**
   * Deletes up to `limit` keys revoked or expired before `before` (and as many Idempotency-Key
   * records made before `idempotencyBefore`); how many keys it deleted.
   */
  purge(before: number, idempotencyBefore: number, limit: number): Promise<number>;
}

/**
 * The arguments of a KeyStore or StoreMaintenance method, as declared above: an implementation (d1.ts,
 * sharded-keys.ts) takes them by name without writing the signature again.
 */
export type StoreArgs<M extends keyof (KeyStore & StoreMaintenance)> = Parameters<(KeyStore & StoreMaintenance)[M]>;

/** A guarded write found the rows it depends on changed since they were read; it wrote nothing (retry). */
export class ConcurrentChangeError extends Error {
  override readonly name = "ConcurrentChangeError";
}

/** The store could not be reached or failed: the caller should retry later (HTTP 503). */
export class StorageUnavailableError extends Error {
  override readonly name = "StorageUnavailableError";
}

/**
 * Sharding by owner: the owner's bucket is being moved to another database (scripts/move-bucket.mjs),
 * so writes to it are refused for the seconds the move takes. Nothing was written; retry after
 * `retryAfterSeconds` (HTTP 503, like any storage outage).
 */
export class BucketMovingError extends StorageUnavailableError {
  constructor(
    readonly bucket: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`bucket ${bucket} is being moved to another database; writes to it are refused until the move is over`);
  }
}

/**
 * The store answered, but its schema is not what this build needs (a table or column is missing:
 * migrations were not applied). Retrying cannot help, so this is a configuration error (HTTP 500).
 */
export class StorageMisconfiguredError extends Error {
  override readonly name = "StorageMisconfiguredError";
}
