/** Bookkeeping in D1 off the request's answer: the schema check (readiness), the purge of dead keys, last-use times. */
import type { D1Queries } from "./d1-session";
import { attempt } from "./d1-sql";
import { StorageMisconfiguredError } from "./store";

/**
 * Resolves when D1 answers and `latestMigration` is the newest applied (d1_migrations, written by
 * `wrangler d1 migrations apply`); throws StorageMisconfiguredError when it is not applied.
 */
export function checkSchema(db: D1Queries, latestMigration: string): Promise<void> {
  return attempt("readiness check", async () => {
    let applied: { name: string } | null;
    try {
      applied = await db.prepare("SELECT name FROM d1_migrations ORDER BY id DESC LIMIT 1").first<{ name: string }>();
    } catch (error) {
      if (!(error instanceof Error && /no such table/i.test(error.message))) throw error;
      applied = null;
    }
    if (applied?.name !== latestMigration) {
      throw new StorageMisconfiguredError(
        `migration ${latestMigration} is not applied (latest applied: ${applied?.name ?? "none"})`,
      );
    }
  });
}

/**
 * Deletes up to `limit` keys revoked or expired before `before` (with their usage counts), and
 * Idempotency-Key records made before `idempotencyBefore`; the number of keys deleted. Which keys is
 * the rule of `deadBefore` (keys/purge-horizon.ts), which `npm run move-bucket` applies too: keep both.
 */
export function purge(db: D1Queries, before: number, idempotencyBefore: number, limit: number): Promise<number> {
  return attempt("purge", async () => {
    const [, keys] = await db.batch([
      // The same keys as the DELETE after it (one transaction): their usage counts go with them.
      db
        .prepare(
          "DELETE FROM key_usage WHERE key_id IN (SELECT id FROM api_keys WHERE revoked_at < ?1 OR expires_at < ?1 LIMIT ?2)",
        )
        .bind(before, limit),
      db
        .prepare(
          "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys WHERE revoked_at < ?1 OR expires_at < ?1 LIMIT ?2)",
        )
        .bind(before, limit),
      db
        .prepare(
          "DELETE FROM idempotency_keys WHERE (caller, key_hash) IN (SELECT caller, key_hash FROM idempotency_keys WHERE created_at < ? LIMIT ?)",
        )
        .bind(idempotencyBefore, limit),
    ]);
    return keys?.meta.changes ?? 0;
  });
}

/** Last use of the keys `ids` at `at`, except where one less than `minIntervalMs` earlier is recorded. */
function touchStatement(db: D1Queries, ids: readonly string[], at: number, minIntervalMs: number): D1PreparedStatement {
  const list = ids.map(() => "?").join(", ");
  return db
    .prepare(
      `UPDATE api_keys SET last_used_at = ? WHERE id IN (${list}) AND (last_used_at IS NULL OR last_used_at <= ?)`,
    )
    .bind(at, ...ids, at - minIntervalMs);
}

export function touchLastUsed(db: D1Queries, ids: readonly string[], at: number, minIntervalMs: number): Promise<void> {
  return attempt("last-used update", async () => {
    await touchStatement(db, ids, at, minIntervalMs).run();
  });
}

/**
 * touchLastUsed, in the same write learning which of `ids` this database has no row of (with several
 * databases, their rows are elsewhere): those ids, in order.
 */
export function touchFound(
  db: D1Queries,
  ids: readonly string[],
  at: number,
  minIntervalMs: number,
): Promise<string[]> {
  return attempt("last-used update", async () => {
    const list = ids.map(() => "?").join(", ");
    const [, present] = await db.batch<{ id: string }>([
      touchStatement(db, ids, at, minIntervalMs),
      db.prepare(`SELECT id FROM api_keys WHERE id IN (${list})`).bind(...ids),
    ]);
    const found = new Set((present?.results ?? []).map((row) => row.id));
    return ids.filter((id) => !found.has(id));
  });
}
