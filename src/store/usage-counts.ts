/**
 * Verification counts per key, hour and outcome in D1 (table key_usage, migration 0006). Written only
 * in batches gathered by each isolate (service/usage-tally.ts): one round trip adds many counts at once.
 */
import type { D1Queries } from "./d1-session";
import { attemptUnclassified } from "./d1-sql";
import { StorageUnavailableError } from "./store";

export interface UsageCount {
  readonly keyId: string;
  /** The start of the UTC hour (epoch ms). */
  readonly hour: number;
  readonly outcome: string;
  readonly count: number;
}

/**
 * Some of a batch's counts were written and the rest not (with D1_SHARDS > 1, one write per database):
 * only `unwritten` may be written again, or the written ones would count twice.
 */
export class PartlyWrittenError extends StorageUnavailableError {
  constructor(
    readonly unwritten: readonly UsageCount[],
    options: { cause: unknown },
  ) {
    super(`${unwritten.length} usage count(s) were not written`, options);
  }
}

export interface UsageStore {
  /** Adds the counts to the stored ones, in one round trip (per database); PartlyWrittenError says which were not. */
  add(counts: readonly UsageCount[]): Promise<void>;
  /** The stored counts of one key for the hours in [from, to). */
  read(keyId: string, from: number, to: number): Promise<UsageCount[]>;
}

/** Rows per INSERT: 4 parameters each, and D1 binds at most 100 per statement. */
const ROWS_PER_STATEMENT = 25;

export class D1UsageStore implements UsageStore {
  constructor(private readonly db: D1Queries) {}

  add(counts: readonly UsageCount[]): Promise<void> {
    return attemptUnclassified("usage write", async () => {
      const statements: D1PreparedStatement[] = [];
      for (let i = 0; i < counts.length; i += ROWS_PER_STATEMENT) {
        const rows = counts.slice(i, i + ROWS_PER_STATEMENT);
        statements.push(
          this.db
            .prepare(
              `INSERT INTO key_usage (key_id, hour, outcome, count) VALUES ${rows.map(() => "(?, ?, ?, ?)").join(", ")} ` +
                "ON CONFLICT (key_id, hour, outcome) DO UPDATE SET count = count + excluded.count",
            )
            .bind(...rows.flatMap((r) => [r.keyId, r.hour, r.outcome, r.count])),
        );
      }
      if (statements.length > 0) await this.db.batch(statements);
    });
  }

  read(keyId: string, from: number, to: number): Promise<UsageCount[]> {
    return attemptUnclassified("usage read", async () => {
      const { results } = await this.db
        .prepare("SELECT hour, outcome, count FROM key_usage WHERE key_id = ? AND hour >= ? AND hour < ?")
        .bind(keyId, from, to)
        .all<{ hour: number; outcome: string; count: number }>();
      return results.map((r) => ({ keyId, hour: r.hour, outcome: r.outcome, count: r.count }));
    });
  }
}
