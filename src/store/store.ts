/**
 * The store of record behind a small interface, so the service never sees SQL and a benchmark or a
 * future backend can supply its own. D1 implements it in d1.ts.
 */
import type { AuditAction, AuditEvent, KeyRecord, Owner } from "../model";

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

/** A record's settings that an update may change, each only when present. */
export type KeyChanges = Partial<
  Pick<KeyRecord, "name" | "metadata" | "enabled" | "expiresAt" | "scopes" | "resources" | "allowedIps">
>;

/** A change of a key's settings, for the interim change sync (until the change feed replaces it). */
export interface Change {
  readonly hash: string;
  readonly updatedAt: number;
}

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

export interface KeyStore {
  /** Stores a new key and its audit event in one atomic write. */
  insert(record: KeyRecord, event: AuditEvent): Promise<void>;
  /**
   * Stores the records in one atomic write, skipping any whose hash is already stored, each with its
   * audit event (`events[i]` for `records[i]`, written only with it): for each record, in order,
   * whether it was inserted.
   */
  insertNew(records: readonly KeyRecord[], events: readonly AuditEvent[]): Promise<boolean[]>;
  findByHash(hash: string): Promise<KeyRecord | null>;
  findById(id: string): Promise<KeyRecord | null>;
  list(page: ListPage): Promise<KeyRecord[]>;
  /**
   * Marks the key revoked at `at` unless it already is, with `event` when it was not (one atomic
   * write); the stored record afterwards (null if it is gone).
   */
  revoke(current: KeyRecord, at: number, event: AuditEvent): Promise<KeyRecord | null>;
  /**
   * Applies `changes` and `event` in one atomic write, stamping updated_at with the event's time, if
   * the key is still unrevoked and unchanged since `current` was read (optimistic concurrency, so an
   * event's old values are always the ones it replaced). False, with nothing written, when it was not.
   */
  update(current: KeyRecord, changes: KeyChanges, event: AuditEvent): Promise<boolean>;
  /**
   * Rotation in one atomic write: the old key (if still unrevoked and unchanged since `current` was
   * read) gets `expiresAt`, the replacement is stored, and both events are written. False, with
   * nothing written, when the old key had changed.
   */
  rotate(
    current: KeyRecord,
    expiresAt: number | null,
    replacement: KeyRecord,
    events: readonly [rotated: AuditEvent, created: AuditEvent],
  ): Promise<boolean>;
  /** Interim change sync: changes after `after` in (updated_at, hash) order, at most `limit`. */
  changedAfter(after: Change, limit: number): Promise<Change[]>;
  /** Audit events, newest first. */
  listEvents(page: EventPage): Promise<AuditEvent[]>;
  /** Deletes at most `limit` events older than `before`; how many it deleted. */
  purgeEvents(before: number, limit: number): Promise<number>;
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
