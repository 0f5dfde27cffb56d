/**
 * The upgrades of imported keys in D1 (service/legacy-check.ts, service/hmac-upgrade.ts), each one
 * conditional write with its `upgraded` event, and the lookup of an HMAC key by the digest it was
 * imported under.
 */
import type { AuditEvent, KeyRecord } from "../model";
import type { D1Queries } from "./d1-session";
import { COLUMNS, type KeyRow, fromRow } from "./d1-rows";
import { FEED_HEAD, attempt, insertEvent } from "./d1-sql";

/** A bcrypt key: its bcrypt hash `from` replaced by `to` (the SHA-256 of the whole token). */
export function upgradeLegacyHash(
  db: D1Queries,
  id: string,
  from: string,
  to: string,
  event: AuditEvent,
): Promise<number | null> {
  return upgrade(
    db,
    db.prepare("UPDATE api_keys SET legacy_hash = ? WHERE id = ? AND legacy_hash = ?").bind(to, id, from),
    event,
  );
}

/**
 * An HMAC key: stored under `sha` (the SHA-256 of the whole token) instead of its HMAC `digest`, which
 * `legacy_hash` keeps (no lookup is made by it; an import of the same digest finds it there). Only
 * while it is still stored under the digest: a concurrent upgrade writes nothing. OR IGNORE: a row
 * already stored under `sha` (the same token imported in a SHA-256 format) leaves this one as it is.
 */
export function upgradeHmacDigest(
  db: D1Queries,
  id: string,
  digest: string,
  sha: string,
  event: AuditEvent,
): Promise<number | null> {
  const statement = db
    .prepare(
      "UPDATE OR IGNORE api_keys SET hash = ?1, legacy_hash = ?2 WHERE id = ?3 AND hash = ?2 AND legacy_format = 'hmac-sha256' AND legacy_hash IS NULL",
    )
    .bind(sha, digest, id);
  return upgrade(db, statement, event);
}

/** The feed position after the write, or null when it changed nothing (then no event either). */
async function upgrade(db: D1Queries, update: D1PreparedStatement, event: AuditEvent): Promise<number | null> {
  const results = await attempt("upgrade", () =>
    db.batch([update, insertEvent(db, event), db.prepare(`SELECT ${FEED_HEAD} AS seq`)]),
  );
  const head = results.pop()?.results[0] as { seq: number } | undefined;
  // The event lands only if the update changed the row (changes() = 1): one event per upgrade.
  return (results.at(-1)?.meta.changes ?? 0) > 0 ? (head?.seq ?? 0) : null;
}

/** The HMAC key imported under `digest` and since upgraded (stored under its token's SHA-256), or null. */
export function findUpgradedHmac(db: D1Queries, digest: string): Promise<KeyRecord | null> {
  return attempt("lookup", async () => {
    const row = await db
      .prepare(`SELECT ${COLUMNS} FROM api_keys WHERE legacy_hash = ? AND legacy_format = 'hmac-sha256'`)
      .bind(digest)
      .first<KeyRow>();
    return row ? fromRow(row) : null;
  });
}
