/**
 * Root keys in D1 (migrations/0008_root_keys.sql): their own table, never api_keys. Every call goes
 * through the store's `attempt` (timeout, StorageUnavailableError). Nothing here caches: a root key is
 * read from D1 on every request that presents it, so its revocation holds from the next request on,
 * in every isolate.
 */
import type { D1Queries } from "./d1-session";
import type { RootKeyRecord, RootScope } from "../model";
import { attempt, newestFirst } from "./d1-sql";

export interface RootKeyPage {
  readonly limit: number;
  readonly includeRevoked: boolean;
  /** Keyset pagination: the (created_at, id) of the last root key of the previous page. */
  readonly after: { readonly createdAt: number; readonly id: string } | null;
}

export interface RootKeyStore {
  insert(record: RootKeyRecord): Promise<void>;
  findById(id: string): Promise<RootKeyRecord | null>;
  findByHash(hash: string): Promise<RootKeyRecord | null>;
  list(page: RootKeyPage): Promise<RootKeyRecord[]>;
  /**
   * Rotation in one batch: the old root key's expiry becomes `expiresAt` only if it is still live and
   * unchanged (`current` as read), and the replacement is inserted only then. False: it changed.
   */
  rotate(current: RootKeyRecord, expiresAt: number | null, replacement: RootKeyRecord, now: number): Promise<boolean>;
  /**
   * Revokes the root key (idempotent: a revoked one keeps its first revocation) and, once no key of its
   * chain is live, deletes the chain's webhook endpoints with their delivery logs, in the same batch; the
   * record after.
   */
  revoke(id: string, at: number, by: string): Promise<RootKeyRecord | null>;
  /** Its last use (written at most once a minute by the caller). */
  touch(id: string, at: number): Promise<void>;
}

interface RootKeyRow {
  id: string;
  hash: string;
  start: string;
  name: string;
  owners: string;
  scopes: string;
  allowed_ips: string | null;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  revoked_by: string | null;
  rotated_from: string | null;
  chain_id: string | null;
  last_used_at: number | null;
}

const COLUMNS =
  "id, hash, start, name, owners, scopes, allowed_ips, created_by, created_at, expires_at, revoked_at, revoked_by, rotated_from, chain_id, last_used_at";

function fromRow(row: RootKeyRow): RootKeyRecord {
  return {
    id: row.id,
    hash: row.hash,
    start: row.start,
    name: row.name,
    owners: JSON.parse(row.owners) as string[],
    scopes: JSON.parse(row.scopes) as RootScope[],
    allowedIps: row.allowed_ips === null ? null : (JSON.parse(row.allowed_ips) as string[]),
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    revokedBy: row.revoked_by,
    rotatedFrom: row.rotated_from,
    chain: row.chain_id ?? row.id,
    lastUsedAt: row.last_used_at,
  };
}

const PLACEHOLDERS = COLUMNS.split(", ")
  .map(() => "?")
  .join(", ");

/** A record's values in COLUMNS' order. */
function values(r: RootKeyRecord): (string | number | null)[] {
  return [
    r.id,
    r.hash,
    r.start,
    r.name,
    JSON.stringify(r.owners),
    JSON.stringify(r.scopes),
    r.allowedIps === null ? null : JSON.stringify(r.allowedIps),
    r.createdBy,
    r.createdAt,
    r.expiresAt,
    r.revokedAt,
    r.revokedBy,
    r.rotatedFrom,
    r.chain,
    r.lastUsedAt,
  ];
}

export class D1RootKeyStore implements RootKeyStore {
  constructor(private readonly db: D1Queries) {}

  insert(record: RootKeyRecord): Promise<void> {
    return attempt("root key insert", async () => {
      await this.db
        .prepare(`INSERT INTO root_keys (${COLUMNS}) VALUES (${PLACEHOLDERS})`)
        .bind(...values(record))
        .run();
    });
  }

  findById(id: string): Promise<RootKeyRecord | null> {
    return attempt("root key read", async () => {
      const row = await this.db.prepare(`SELECT ${COLUMNS} FROM root_keys WHERE id = ?`).bind(id).first<RootKeyRow>();
      return row ? fromRow(row) : null;
    });
  }

  findByHash(hash: string): Promise<RootKeyRecord | null> {
    return attempt("root key lookup", async () => {
      const row = await this.db
        .prepare(`SELECT ${COLUMNS} FROM root_keys WHERE hash = ?`)
        .bind(hash)
        .first<RootKeyRow>();
      return row ? fromRow(row) : null;
    });
  }

  list(page: RootKeyPage): Promise<RootKeyRecord[]> {
    return attempt("root key list", async () => {
      const rows = await newestFirst<RootKeyRow>(this.db, {
        select: `SELECT ${COLUMNS} FROM root_keys`,
        time: "created_at",
        where: page.includeRevoked ? [] : ["revoked_at IS NULL"],
        params: [],
        after: page.after && { time: page.after.createdAt, id: page.after.id },
        limit: page.limit,
      });
      return rows.map(fromRow);
    });
  }

  rotate(current: RootKeyRecord, expiresAt: number | null, replacement: RootKeyRecord, now: number): Promise<boolean> {
    return attempt("root key rotation", async () => {
      // The insert runs only if the update changed the old key (changes() of the previous statement).
      const [updated] = await this.db.batch([
        this.db
          .prepare(
            `UPDATE root_keys SET expires_at = ? WHERE id = ? AND revoked_at IS NULL AND expires_at IS ? AND (expires_at IS NULL OR expires_at > ?)`,
          )
          .bind(expiresAt, current.id, current.expiresAt, now),
        this.db
          .prepare(`INSERT INTO root_keys (${COLUMNS}) SELECT ${PLACEHOLDERS} WHERE changes() = 1`)
          .bind(...values({ ...replacement, revokedAt: null, revokedBy: null, lastUsedAt: null })),
      ]);
      return (updated?.meta.changes ?? 0) === 1;
    });
  }

  revoke(id: string, at: number, by: string): Promise<RootKeyRecord | null> {
    return attempt("root key revocation", async () => {
      // ?1 the root key, ?2 now. Its chain's webhook endpoints (and their delivery logs) go in the same
      // batch, once no key of the chain is live: revoking a key whose replacement lives on keeps them.
      const chain = "(SELECT chain_id FROM root_keys WHERE id = ?1)";
      const deadChainEndpoints = `owner_type = 'root' AND owner_id = ${chain} AND NOT EXISTS (SELECT 1 FROM root_keys
        WHERE chain_id = ${chain} AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2))`;
      await this.db.batch([
        this.db
          .prepare("UPDATE root_keys SET revoked_at = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_at IS NULL")
          .bind(id, at, by),
        this.db
          .prepare(
            `DELETE FROM webhook_deliveries WHERE endpoint_id IN (SELECT id FROM webhook_endpoints WHERE ${deadChainEndpoints})`,
          )
          .bind(id, at),
        this.db.prepare(`DELETE FROM webhook_endpoints WHERE ${deadChainEndpoints}`).bind(id, at),
      ]);
      const row = await this.db.prepare(`SELECT ${COLUMNS} FROM root_keys WHERE id = ?`).bind(id).first<RootKeyRow>();
      return row ? fromRow(row) : null;
    });
  }

  touch(id: string, at: number): Promise<void> {
    return attempt("root key last use", async () => {
      await this.db.prepare("UPDATE root_keys SET last_used_at = ? WHERE id = ?").bind(at, id).run();
    });
  }
}
