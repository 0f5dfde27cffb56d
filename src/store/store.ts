/**
 * The store of record behind a small interface, so the service never sees SQL and a benchmark or a
 * future backend can supply its own. D1 implements it in d1.ts.
 */
import type { KeyRecord, Owner } from "../model";

export interface ListPage {
  readonly owners: readonly Owner[];
  readonly limit: number;
  readonly includeRevoked: boolean;
  /** Start after this (created_at, id) position; newest first. */
  readonly after: { readonly createdAt: number; readonly id: string } | null;
}

export interface Revocation {
  readonly hash: string;
  readonly revokedAt: number;
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

export interface KeyStore {
  /**
   * Stores a new key in one atomic write, with the Idempotency-Key `claim` when given; throws
   * IdempotencyConflict (storing nothing) when the claim was already made.
   */
  insert(record: KeyRecord, claim?: IdempotencyClaim): Promise<void>;
  /**
   * Stores the records in one atomic write, skipping any whose hash is already stored: for each
   * record, in order, whether it was inserted.
   */
  insertNew(records: readonly KeyRecord[]): Promise<boolean[]>;
  findByHash(hash: string): Promise<KeyRecord | null>;
  findById(id: string): Promise<KeyRecord | null>;
  list(page: ListPage): Promise<KeyRecord[]>;
  /** Marks the key revoked at `at` unless it already is; the stored record afterwards. */
  revoke(id: string, at: number): Promise<KeyRecord | null>;
  /**
   * Revocations after `after` in (revoked_at, hash) order, at most `limit`. Paging on the pair, not on
   * the time alone, so a page boundary inside one millisecond loses nothing.
   */
  revokedAfter(after: Revocation, limit: number): Promise<Revocation[]>;
  /**
   * Records use of the keys `ids` (at most TOUCH_BATCH) at `at`, in one write, except where a use less
   * than `minIntervalMs` earlier is already recorded.
   */
  touchLastUsed(ids: readonly string[], at: number, minIntervalMs: number): Promise<void>;
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

/** The store could not be reached or failed: the caller should retry later (HTTP 503). */
export class StorageUnavailableError extends Error {
  override readonly name = "StorageUnavailableError";
}

/**
 * The store answered, but its schema is not what this build needs (a table or column is missing:
 * migrations were not applied). Retrying cannot help, so this is a configuration error (HTTP 500).
 */
export class StorageMisconfiguredError extends Error {
  override readonly name = "StorageMisconfiguredError";
}
