/**
 * The warnings latchkey writes to the audit log on its own, in D1 (migrations/0012_warnings.sql):
 * `expiring` and `expired` (the expiry scan, service/warnings.ts) and `credits_low` and
 * `credits_exhausted` (a key chain's counter, store/counter.ts, for the chain's keys; an owner's counter,
 * for the owner: owner_events), each with actor `latchkey`.
 *
 * Exactly once: a warning is a row of `key_warnings`, unique by (key or chain, warning, mark), and its
 * audit events are made from the rows the same batch (one transaction) inserted, found by the batch's
 * own random id. A scan run twice, two scans at once, or a counter's write retried after a failure
 * insert no second row, so they write no second event; and no event is written without its row.
 */
import type { D1Queries } from "./d1-session";
import { ownerCounterName } from "../keys/owner-usage";
import type { ExpiryWindow, CreditWarning } from "../keys/warnings";
import { DAY_MS, EXPIRED_LOOKBACK_MS } from "../keys/warnings";
import { type Owner, WARNING_ACTOR } from "../model";
import { EVENT_COLUMNS, OWNER_EVENT_COLUMNS } from "./d1-rows";
import { NEW_UUID, attempt } from "./d1-sql";

/** How long a credit warning's row stops a duplicate: far longer than its counter keeps retrying. */
export const CREDIT_WARNING_KEPT_MS = 30 * DAY_MS;

export interface WarningStore {
  /**
   * Writes `window`'s warning for at most `limit` keys due for it at `now` and not yet warned (by
   * expires_at: a new expiry is warned again), each with its audit event: how many.
   */
  expiryWarnings(window: ExpiryWindow, now: number, limit: number): Promise<number>;
  /** Writes a chain's credit warning for its unrevoked, unexpired keys, unless it was written before. */
  creditWarning(chain: string, warning: CreditWarning): Promise<void>;
  /** Writes an owner's credit warning to its audit log (while it has limits), unless it was written before. */
  ownerCreditWarning(owner: Owner, warning: CreditWarning): Promise<void>;
  /** Deletes at most `limit` rows that can no longer stop a duplicate at `now`: how many. */
  pruneWarnings(now: number, limit: number): Promise<number>;
}

/** An epoch-ms column as RFC 3339 with milliseconds, exactly as Date.prototype.toISOString writes it. */
const iso = (column: string) =>
  `printf('%s.%03dZ', strftime('%Y-%m-%dT%H:%M:%S', ${column} / 1000, 'unixepoch'), ${column} % 1000)`;

const CREDIT_ACTIONS = { low: "credits_low", exhausted: "credits_exhausted" } as const;

/** A credit warning's `changes`: the balance before and after the call, and the threshold it fell below. */
function creditChanges(warning: CreditWarning): Record<string, { old: unknown; new: unknown }> {
  return {
    credits_remaining: { old: warning.remaining.old, new: warning.remaining.new },
    ...(warning.kind === "low" ? { low_threshold: { old: null, new: warning.threshold } } : {}),
  };
}

export class D1WarningStore implements WarningStore {
  constructor(private readonly db: D1Queries) {}

  expiryWarnings(window: ExpiryWindow, now: number, limit: number): Promise<number> {
    return attempt("expiry warnings", async () => {
      const batch = crypto.randomUUID();
      // ?1 warning, ?2 from, ?3 to, ?4 now, ?5 kept after the expiry, ?6 batch, ?7 limit. A key replaced by
      // rotation gets none: its `rotated` event announced its end.
      const rows = this.db
        .prepare(
          `INSERT OR IGNORE INTO key_warnings (key_id, warning, mark, at, until, batch)
           SELECT k.id, ?1, k.expires_at, ?4, k.expires_at + ?5, ?6 FROM api_keys k
           WHERE k.expires_at > ?2 AND k.expires_at <= ?3 AND k.revoked_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM api_keys r WHERE r.rotated_from = k.id)
             AND NOT EXISTS (SELECT 1 FROM key_warnings w WHERE w.key_id = k.id AND w.warning = ?1 AND w.mark = k.expires_at)
           ORDER BY k.expires_at LIMIT ?7`,
        )
        .bind(window.warning, window.from, window.to, now, EXPIRED_LOOKBACK_MS, batch, limit);
      const expiry = `json_object('old', ${iso("k.expires_at")}, 'new', ${iso("k.expires_at")})`;
      const changes =
        window.thresholdMs === null
          ? `json_object('expires_at', ${expiry})`
          : `json_object('expires_at', ${expiry}, 'threshold_days', json_object('old', NULL, 'new', ?4))`;
      const events = this.db
        .prepare(
          `INSERT INTO key_events (${EVENT_COLUMNS})
           SELECT ${NEW_UUID}, k.id, k.owner_type, k.owner_id, ?1, '${WARNING_ACTOR}', ?2, ${changes}, NULL, NULL
           FROM key_warnings w JOIN api_keys k ON k.id = w.key_id WHERE w.batch = ?3`,
        )
        .bind(window.action, now, batch, ...(window.thresholdMs === null ? [] : [window.thresholdMs / DAY_MS]));
      const [inserted] = await this.db.batch([rows, events]);
      return inserted?.meta.changes ?? 0;
    });
  }

  creditWarning(chain: string, warning: CreditWarning): Promise<void> {
    // The chain's keys are its first key (id = chain) and those sharing its counter (usage_id = chain).
    return this.creditWarningOnce(
      "credit warning",
      chain,
      warning,
      `INSERT INTO key_events (${EVENT_COLUMNS})
             SELECT ${NEW_UUID}, id, owner_type, owner_id, ?2, '${WARNING_ACTOR}', ?4, ?7, NULL, NULL FROM api_keys
             WHERE (usage_id = ?1 OR id = ?1) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?4)
               AND EXISTS (SELECT 1 FROM key_warnings WHERE key_id = ?1 AND warning = ?2 AND mark = ?3 AND batch = ?6)`,
    );
  }

  ownerCreditWarning(owner: Owner, warning: CreditWarning): Promise<void> {
    // The ledger's key_id is the owner's counter; ?8 owner type, ?9 owner id. One event, while the owner has limits.
    return this.creditWarningOnce(
      "owner credit warning",
      ownerCounterName(owner),
      warning,
      `INSERT INTO owner_events (${OWNER_EVENT_COLUMNS})
             SELECT ${NEW_UUID}, ?8, ?9, ?2, '${WARNING_ACTOR}', ?4, ?7, NULL, NULL
             WHERE EXISTS (SELECT 1 FROM key_warnings WHERE key_id = ?1 AND warning = ?2 AND mark = ?3 AND batch = ?6)
               AND EXISTS (SELECT 1 FROM owner_limits WHERE owner_type = ?8 AND owner_id = ?9)`,
      owner.type,
      owner.id,
    );
  }

  /**
   * A credit warning's ledger row for `ledgerKey` (a chain, or an owner's counter) and, in the same
   * batch, the `events` it makes, only from the row this batch inserted. Both statements take the same
   * parameters: ?1 the ledger's key_id, ?2 warning, ?3 period, ?4 at, ?5 kept until, ?6 batch, ?7 the
   * event's changes, then `more` (?8 on).
   */
  private creditWarningOnce(
    what: string,
    ledgerKey: string,
    warning: CreditWarning,
    events: string,
    ...more: string[]
  ): Promise<void> {
    return attempt(what, async () => {
      const row = [
        ledgerKey,
        CREDIT_ACTIONS[warning.kind],
        warning.period,
        warning.at,
        warning.at + CREDIT_WARNING_KEPT_MS,
        crypto.randomUUID(),
      ];
      await this.db.batch([
        this.db
          .prepare(
            "INSERT OR IGNORE INTO key_warnings (key_id, warning, mark, at, until, batch) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
          )
          .bind(...row),
        this.db.prepare(events).bind(...row, JSON.stringify(creditChanges(warning)), ...more),
      ]);
    });
  }

  pruneWarnings(now: number, limit: number): Promise<number> {
    return attempt("warning prune", async () => {
      const result = await this.db
        .prepare(
          "DELETE FROM key_warnings WHERE (key_id, warning, mark) IN (SELECT key_id, warning, mark FROM key_warnings WHERE until < ? LIMIT ?)",
        )
        .bind(now, limit)
        .run();
      return result.meta.changes;
    });
  }
}
