/** Reads of key rows in D1 (by hash with its feed position, by id, a page, a key's replacement) and of the change feed. */
import type { D1Queries } from "./d1-session";
import type { KeyRecord } from "../model";
import { COLUMNS, type ChangeRow, type KeyRow, fromChangeRow, fromRow } from "./d1-rows";
import { FEED_HEAD, attempt, newestFirst } from "./d1-sql";

/**
 * The key's owner's limits (migrations/0010_owner_limits.sql), read in the same statement as the key:
 * a primary-key lookup, no extra round trip; NULL for an owner without limits.
 */
const OWNER_RULES =
  "(SELECT rules FROM owner_limits WHERE owner_limits.owner_type = api_keys.owner_type AND owner_limits.owner_id = api_keys.owner_id) AS owner_rules";
import type { KeyChange, ListPage, StampedRecord } from "./store";

export function findByHash(db: D1Queries, hash: string): Promise<StampedRecord | null> {
  return attempt("lookup", async () => {
    const row = await db
      .prepare(`SELECT ${COLUMNS}, ${OWNER_RULES}, ${FEED_HEAD} AS feed_seq FROM api_keys WHERE hash = ?`)
      .bind(hash)
      .first<KeyRow & { feed_seq: number }>();
    return row ? { record: fromRow(row), seq: row.feed_seq } : null;
  });
}

export function replacementOf(db: D1Queries, id: string): Promise<string | null> {
  return attempt("lookup", async () => {
    const row = await db
      .prepare("SELECT id FROM api_keys WHERE rotated_from = ? LIMIT 1")
      .bind(id)
      .first<{ id: string }>();
    return row?.id ?? null;
  });
}

export function findById(db: D1Queries, id: string): Promise<KeyRecord | null> {
  return attempt("lookup", async () => {
    const row = await db
      .prepare(`SELECT ${COLUMNS}, ${OWNER_RULES} FROM api_keys WHERE id = ?`)
      .bind(id)
      .first<KeyRow>();
    return row ? fromRow(row) : null;
  });
}

export function list(db: D1Queries, page: ListPage): Promise<KeyRecord[]> {
  return attempt("list", async () => {
    const where: string[] = [];
    const params: (string | number)[] = [];
    where.push(`(${page.owners.map(() => "(owner_type = ? AND owner_id = ?)").join(" OR ")})`);
    for (const owner of page.owners) params.push(owner.type, owner.id);
    if (page.createdBy !== undefined) {
      where.push("created_by = ?");
      params.push(page.createdBy);
    }
    if (page.ownerType !== undefined) {
      where.push("owner_type = ?");
      params.push(page.ownerType);
    }
    switch (page.status) {
      case "active":
        where.push("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)");
        params.push(page.now);
        break;
      case "revoked":
        where.push("revoked_at IS NOT NULL");
        break;
      case "expired":
        where.push("revoked_at IS NULL AND expires_at <= ?");
        params.push(page.now);
        break;
      case undefined:
        if (!page.includeRevoked) where.push("revoked_at IS NULL");
    }
    const after = page.after && { time: page.after.createdAt, id: page.after.id };
    const select = `SELECT ${COLUMNS} FROM api_keys`;
    const rows = await newestFirst<KeyRow>(db, { select, time: "created_at", where, params, after, limit: page.limit });
    return rows.map(fromRow);
  });
}

export function changesAfter(db: D1Queries, seq: number, limit: number): Promise<KeyChange[]> {
  return attempt("change feed", async () => {
    const { results } = await db
      .prepare("SELECT seq, hash, key_id, kind FROM key_changes WHERE seq > ? ORDER BY seq LIMIT ?")
      .bind(seq, limit)
      .all<ChangeRow>();
    return results.map(fromChangeRow);
  });
}

export function latestChanges(db: D1Queries, limit: number): Promise<KeyChange[]> {
  return attempt("change feed", async () => {
    const { results } = await db
      .prepare("SELECT seq, hash, key_id, kind FROM key_changes ORDER BY seq DESC LIMIT ?")
      .bind(limit)
      .all<ChangeRow>();
    return results.map(fromChangeRow).reverse();
  });
}
