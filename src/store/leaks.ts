/**
 * Leaked keys in D1 (service/leaks.ts): the keys a report names, found by hash in one query however
 * many there are (the hashes travel as one JSON parameter, so D1's limit of 100 bound parameters does
 * not split a batch of a thousand), and the leak's action on them — revoke or disable — with one
 * `leaked` audit event per key it changes, in one atomic write. A key already revoked (or, to disable,
 * already disabled) is left alone and gets no event, so a report repeated, or two reports racing, act
 * once. The feed's triggers (migrations) append every changed key in the same write.
 */
import type { D1Queries } from "./d1-session";
import type { KeyRecord, LeakAction, Owner, OwnerType } from "../model";
import { COLUMNS, EVENT_COLUMNS, type KeyRow, fromRow } from "./d1-rows";
import { FEED_HEAD, NEW_UUID, attempt } from "./d1-sql";
import type { RevocationOrigin } from "./store";

/** What a report needs to know of a stored key: whose it is and whether it is still usable. */
export interface ReportedKey {
  readonly id: string;
  readonly hash: string;
  readonly owner: Owner;
  readonly revokedAt: number | null;
  readonly enabled: boolean;
}

/** One key to act on: its hash and its event's changes (field → { old, new }). */
export interface LeakChange {
  readonly hash: string;
  readonly changes: Readonly<Record<string, { readonly old: unknown; readonly new: unknown }>>;
}

export interface LeakStore {
  /** The stored keys among `hashes` (any number), in one query; those not stored are left out. */
  findByHashes(hashes: readonly string[]): Promise<ReportedKey[]>;
  /**
   * Revokes (or disables) at `at` each key of `leaks` that is not revoked (nor, to disable, disabled)
   * yet, each with a `leaked` event of its changes by `origin`, in one atomic write: the records it
   * changed, as they are now, and the feed position after the write.
   */
  markLeaked(
    action: LeakAction,
    leaks: readonly LeakChange[],
    at: number,
    origin: RevocationOrigin,
  ): Promise<{ records: KeyRecord[]; seq: number }>;
}

interface ReportedRow {
  id: string;
  hash: string;
  owner_type: string;
  owner_id: string;
  revoked_at: number | null;
  enabled: number;
}

/** What each action sets, and which keys (columns prefixed with `k`) it still has to change. */
const ACTIONS: Record<LeakAction, { set: string; pending: (k: string) => string }> = {
  revoke: { set: "revoked_at = ?2, updated_at = ?2", pending: (k) => `${k}revoked_at IS NULL` },
  disable: { set: "enabled = 0, updated_at = ?2", pending: (k) => `${k}revoked_at IS NULL AND ${k}enabled = 1` },
};

export class D1LeakStore implements LeakStore {
  constructor(private readonly db: D1Queries) {}

  findByHashes(hashes: readonly string[]): Promise<ReportedKey[]> {
    if (hashes.length === 0) return Promise.resolve([]);
    return attempt("leak lookup", async () => {
      const { results } = await this.db
        .prepare(
          "SELECT id, hash, owner_type, owner_id, revoked_at, enabled FROM api_keys WHERE hash IN (SELECT value FROM json_each(?1))",
        )
        .bind(JSON.stringify(hashes))
        .all<ReportedRow>();
      return results.map((row) => ({
        id: row.id,
        hash: row.hash,
        owner: { type: row.owner_type as OwnerType, id: row.owner_id },
        revokedAt: row.revoked_at,
        enabled: row.enabled !== 0,
      }));
    });
  }

  markLeaked(
    action: LeakAction,
    leaks: readonly LeakChange[],
    at: number,
    origin: RevocationOrigin,
  ): Promise<{ records: KeyRecord[]; seq: number }> {
    if (leaks.length === 0) return Promise.resolve({ records: [], seq: 0 });
    const { set, pending } = ACTIONS[action];
    // ?1: [[hash, changes as JSON text], ...]
    const items = JSON.stringify(leaks.map((leak) => [leak.hash, JSON.stringify(leak.changes)]));
    return attempt("leak", async () => {
      // One batch (one transaction): the events of the keys still to change, then the change itself.
      const results = await this.db.batch<KeyRow>([
        this.db
          .prepare(
            `INSERT INTO key_events (${EVENT_COLUMNS})
             SELECT ${NEW_UUID}, k.id, k.owner_type, k.owner_id, 'leaked', ?3, ?2, json_extract(j.value, '$[1]'), ?4, ?5
             FROM json_each(?1) j JOIN api_keys k ON k.hash = json_extract(j.value, '$[0]')
             WHERE ${pending("k.")}`,
          )
          .bind(items, at, origin.actor, origin.ip, origin.userAgent),
        this.db
          .prepare(
            `UPDATE api_keys SET ${set}
             WHERE hash IN (SELECT json_extract(value, '$[0]') FROM json_each(?1)) AND ${pending("")}
             RETURNING ${COLUMNS}`,
          )
          .bind(items, at),
        this.db.prepare(`SELECT ${FEED_HEAD} AS seq`),
      ]);
      const seq = (results[2]?.results[0] as { seq: number } | undefined)?.seq ?? 0;
      return { records: (results[1]?.results ?? []).map(fromRow), seq };
    });
  }
}
