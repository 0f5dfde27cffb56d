/**
 * KeyStore on D1, the store of record. Rows hold only the key's SHA-256 (`hash`, unique index),
 * never the key. Times are epoch milliseconds; JSON columns hold scopes, resources and metadata.
 * Every D1 failure surfaces as StorageUnavailableError, with the cause kept for the log (d1-sql.ts,
 * `attempt`). This class only wires the interface to its parts: d1-writes.ts (key rows, lineage,
 * idempotency claims in d1-idempotency.ts), d1-reads.ts (lookups, pages, the change feed),
 * d1-events.ts (the audit log), d1-maintenance.ts (readiness, purge, last use), d1-rows.ts (rows).
 */
import type { D1Queries } from "./d1-session";
import type { AuditEvent, KeyRecord } from "../model";
import * as events from "./d1-events";
import * as maintenance from "./d1-maintenance";
import * as reads from "./d1-reads";
import * as writes from "./d1-writes";
import { upgradeLegacyHash } from "./d1-legacy";
import type {
  EventPage,
  IdempotencyClaim,
  InsertLimits,
  InsertRefusal,
  KeyChange,
  KeyChanges,
  KeyStore,
  ListPage,
  Reach,
  ReachGuard,
  RevocationOrigin,
  StampedRecord,
  StoreMaintenance,
} from "./store";

export class D1KeyStore implements KeyStore, StoreMaintenance {
  constructor(private readonly db: D1Queries) {}

  insert(
    r: KeyRecord,
    event: AuditEvent,
    limits: InsertLimits,
    claim?: IdempotencyClaim,
  ): Promise<{ seq: number } | { refused: InsertRefusal }> {
    return writes.insert(this.db, r, event, limits, claim);
  }

  insertNew(
    records: readonly KeyRecord[],
    events: readonly AuditEvent[],
    limits: InsertLimits,
  ): Promise<{ inserted: boolean[] } | { refused: InsertRefusal }> {
    return writes.insertNew(this.db, records, events, limits);
  }

  reach(reach: Reach, root: string): Promise<{ records: KeyRecord[]; guard: ReachGuard }> {
    return writes.reach(this.db, reach, root);
  }

  revoke(id: string, at: number, cascade: boolean, origin: RevocationOrigin, guard?: ReachGuard): Promise<KeyRecord[]> {
    return writes.revoke(this.db, id, at, cascade, origin, guard);
  }

  update(
    current: KeyRecord,
    changes: KeyChanges,
    event: AuditEvent,
    guards: readonly ReachGuard[] = [],
  ): Promise<number | null> {
    return writes.update(this.db, current, changes, event, guards);
  }

  rotate(
    current: KeyRecord,
    expiresAt: number | null,
    replacement: KeyRecord,
    events: readonly [AuditEvent, AuditEvent],
    limits: InsertLimits,
  ): Promise<{ seq: number } | { refused: InsertRefusal } | null> {
    return writes.rotate(this.db, current, expiresAt, replacement, events, limits);
  }

  findByHash(hash: string): Promise<StampedRecord | null> {
    return reads.findByHash(this.db, hash);
  }

  findById(id: string): Promise<KeyRecord | null> {
    return reads.findById(this.db, id);
  }

  replacementOf(id: string): Promise<string | null> {
    return reads.replacementOf(this.db, id);
  }

  list(page: ListPage): Promise<KeyRecord[]> {
    return reads.list(this.db, page);
  }

  changesAfter(seq: number, limit: number): Promise<KeyChange[]> {
    return reads.changesAfter(this.db, seq, limit);
  }

  latestChanges(limit: number): Promise<KeyChange[]> {
    return reads.latestChanges(this.db, limit);
  }

  listEvents(page: EventPage): Promise<AuditEvent[]> {
    return events.listEvents(this.db, page);
  }

  purgeEvents(before: number, limit: number): Promise<number> {
    return events.purgeEvents(this.db, before, limit);
  }

  upgradeLegacyHash(id: string, from: string, to: string, event: AuditEvent): Promise<number | null> {
    return upgradeLegacyHash(this.db, id, from, to, event);
  }

  touchLastUsed(ids: readonly string[], at: number, minIntervalMs: number): Promise<void> {
    return maintenance.touchLastUsed(this.db, ids, at, minIntervalMs);
  }

  checkSchema(latestMigration: string): Promise<void> {
    return maintenance.checkSchema(this.db, latestMigration);
  }

  purge(before: number, idempotencyBefore: number, limit: number): Promise<number> {
    return maintenance.purge(this.db, before, idempotencyBefore, limit);
  }
}
