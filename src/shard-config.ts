/**
 * Sharding by owner's setting (read by config.ts, once per env object): D1_SHARDS, the number of D1
 * databases, bound as DB (the first), DB_1, DB_2, ... Unset or 1: one database, as always. A value
 * that is not a whole number from 1 to 256, or that names a binding the Worker lacks, is reported and
 * makes every storage call fail (500) rather than put keys in the wrong database.
 */
import type { Env } from "./env";
import { MAX_SHARDS } from "./keys/shard";

export interface ShardConfig {
  /** How many databases: DB, then DB_1 ... DB_<count - 1>. */
  readonly count: number;
  /** Why the setting cannot be used (storage then refuses service); null: it can. */
  readonly problem: string | null;
}

/** The binding name of database `index`: DB, DB_1, DB_2, ... */
export const shardBinding = (index: number): string => (index === 0 ? "DB" : `DB_${index}`);

export function readShardConfig(env: Env, errors: string[]): ShardConfig {
  const raw = env.D1_SHARDS?.trim();
  if (!raw) return { count: 1, problem: null };
  const count = Number(raw);
  let problem: string | null = null;
  if (!Number.isInteger(count) || count < 1 || count > MAX_SHARDS) {
    problem = `D1_SHARDS must be a whole number from 1 to ${MAX_SHARDS}; storage refuses service`;
  } else {
    const missing = Array.from({ length: count }, (_, i) => shardBinding(i)).filter(
      (name) => !(env as unknown as Record<string, unknown>)[name],
    );
    if (missing.length > 0) {
      problem = `D1_SHARDS is ${count} but the D1 binding${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing; storage refuses service`;
    }
  }
  if (problem) errors.push(problem);
  return { count: problem ? 1 : count, problem };
}
