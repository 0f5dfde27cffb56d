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

export interface KeyStore {
  /** Stores a new key in one atomic write. */
  insert(record: KeyRecord): Promise<void>;
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

/** The store could not be reached or failed: the caller should retry later (HTTP 503). */
export class StorageUnavailableError extends Error {
  override readonly name = "StorageUnavailableError";
}
