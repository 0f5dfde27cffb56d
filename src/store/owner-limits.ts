/**
 * Per-customer limits in D1 (migrations/0010_owner_limits.sql): an owner's rate limits and credits
 * (`owner_limits`, one row per owner that has any), their audit log (`owner_events`) and the usage
 * counts of all an owner's keys. A write is conditional on the row as read (`changed_at`) and carries
 * its audit event in the same batch; the table's triggers append every unrevoked key of the owner to
 * the change feed in the same statement, so caches learn of it as of any key change.
 */
import type { D1Queries } from "./d1-session";
import type { KeyLimits } from "../keys/limit-arithmetic";
import type { Owner } from "../model";
import { type LogRow, OWNER_EVENT_COLUMNS, fromLogRow } from "./d1-rows";
import { attemptUnclassified } from "./d1-sql";
import type { UsageCount } from "./usage-counts";

export interface StoredOwnerLimits {
  readonly limits: KeyLimits;
  /** When they last changed (epoch ms): a write is conditional on it. */
  readonly changedAt: number;
}

/** A change by someone (`limits_updated`, `credits_updated`), or a credit warning latchkey writes (actor `latchkey`). */
export type OwnerAuditAction = "limits_updated" | "credits_updated" | "credits_low" | "credits_exhausted";

/** One change of an owner's limits, as the audit log holds it. Never a key, a hash or a JWT. */
export interface OwnerEvent {
  readonly id: string;
  readonly owner: Owner;
  readonly action: OwnerAuditAction;
  readonly actor: string;
  readonly at: number;
  readonly changes: Readonly<Record<string, { readonly old: unknown; readonly new: unknown }>>;
  readonly ip: string | null;
  readonly userAgent: string | null;
}

export interface OwnerLimitsStore {
  get(owner: Owner): Promise<StoredOwnerLimits | null>;
  /**
   * Writes `limits` (null: removes the row) with `event`, only if the row is still as read (`readAt`:
   * its `changedAt`, or null when there was none). False when it changed meanwhile (nothing written).
   */
  put(owner: Owner, limits: KeyLimits | null, readAt: number | null, event: OwnerEvent): Promise<boolean>;
  /** Verifications of every key of the owner (revoked ones included), per hour and outcome, in [from, to). */
  usage(owner: Owner, from: number, to: number): Promise<UsageCount[]>;
  /** The owner's audit events, newest first. */
  events(owner: Owner, limit: number): Promise<OwnerEvent[]>;
}

export class D1OwnerLimitsStore implements OwnerLimitsStore {
  constructor(private readonly db: D1Queries) {}

  get(owner: Owner): Promise<StoredOwnerLimits | null> {
    return attemptUnclassified("owner limits read", async () => {
      const row = await this.db
        .prepare("SELECT rules, changed_at FROM owner_limits WHERE owner_type = ? AND owner_id = ?")
        .bind(owner.type, owner.id)
        .first<{ rules: string; changed_at: number }>();
      return row ? { limits: JSON.parse(row.rules) as KeyLimits, changedAt: row.changed_at } : null;
    });
  }

  put(owner: Owner, limits: KeyLimits | null, readAt: number | null, event: OwnerEvent): Promise<boolean> {
    return attemptUnclassified("owner limits write", async () => {
      // The guard must change with every write, whatever the clocks of the writers.
      const at = Math.max(event.at, (readAt ?? 0) + 1);
      let write: D1PreparedStatement;
      if (limits === null && readAt === null) return true;
      if (limits === null) {
        write = this.db
          .prepare("DELETE FROM owner_limits WHERE owner_type = ? AND owner_id = ? AND changed_at = ?")
          .bind(owner.type, owner.id, readAt);
      } else if (readAt === null) {
        write = this.db
          .prepare(
            "INSERT INTO owner_limits (owner_type, owner_id, rules, changed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
          )
          .bind(owner.type, owner.id, JSON.stringify(limits), at);
      } else {
        write = this.db
          .prepare(
            "UPDATE owner_limits SET rules = ?, changed_at = ? WHERE owner_type = ? AND owner_id = ? AND changed_at = ?",
          )
          .bind(JSON.stringify(limits), at, owner.type, owner.id, readAt);
      }
      const [result] = await this.db.batch([write, this.insertEvent(event)]);
      // D1 counts the rows its triggers wrote too (the feed): any change means the write landed.
      return (result?.meta.changes ?? 0) > 0;
    });
  }

  usage(owner: Owner, from: number, to: number): Promise<UsageCount[]> {
    return attemptUnclassified("owner usage read", async () => {
      const { results } = await this.db
        .prepare(
          "SELECT u.hour AS hour, u.outcome AS outcome, SUM(u.count) AS count FROM api_keys k JOIN key_usage u ON u.key_id = k.id " +
            "WHERE k.owner_type = ? AND k.owner_id = ? AND u.hour >= ? AND u.hour < ? GROUP BY u.hour, u.outcome",
        )
        .bind(owner.type, owner.id, from, to)
        .all<{ hour: number; outcome: string; count: number }>();
      return results.map((r) => ({ keyId: "", hour: r.hour, outcome: r.outcome, count: r.count }));
    });
  }

  events(owner: Owner, limit: number): Promise<OwnerEvent[]> {
    return attemptUnclassified("owner event list", async () => {
      const { results } = await this.db
        .prepare(
          `SELECT ${OWNER_EVENT_COLUMNS} FROM owner_events WHERE owner_type = ? AND owner_id = ? ORDER BY at DESC, id DESC LIMIT ?`,
        )
        .bind(owner.type, owner.id, limit)
        .all<LogRow>();
      return results.map((row) => fromLogRow<OwnerAuditAction>(row));
    });
  }

  /** The event, written only if the write before it in the batch changed the row. */
  private insertEvent(e: OwnerEvent): D1PreparedStatement {
    return this.db
      .prepare(`INSERT INTO owner_events (${OWNER_EVENT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1`)
      .bind(e.id, e.owner.type, e.owner.id, e.action, e.actor, e.at, JSON.stringify(e.changes), e.ip, e.userAgent);
  }
}
