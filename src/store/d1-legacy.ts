/** The upgrade of a bcrypt-imported key in D1 (service/legacy-check.ts): one conditional write with its event. */
import type { D1Queries } from "./d1-session";
import type { AuditEvent } from "../model";
import { FEED_HEAD, attempt, insertEvent } from "./d1-sql";

export async function upgradeLegacyHash(
  db: D1Queries,
  id: string,
  from: string,
  to: string,
  event: AuditEvent,
): Promise<number | null> {
  const results = await attempt("upgrade", () =>
    db.batch([
      db.prepare("UPDATE api_keys SET legacy_hash = ? WHERE id = ? AND legacy_hash = ?").bind(to, id, from),
      insertEvent(db, event),
      db.prepare(`SELECT ${FEED_HEAD} AS seq`),
    ]),
  );
  const head = results.pop()?.results[0] as { seq: number } | undefined;
  // The event lands only if the update changed the row (changes() = 1): one event per upgrade.
  return (results.at(-1)?.meta.changes ?? 0) > 0 ? (head?.seq ?? 0) : null;
}
