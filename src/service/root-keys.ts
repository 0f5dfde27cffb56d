/**
 * Root keys: the credential of a backend that provisions its customers' keys. Operators (a role in
 * OPERATOR_ROLES) create, list, read, rotate and revoke them; a root key then acts on /v1/keys for any
 * owner its patterns cover, named in each request (service/root-rules.ts, service/rules.ts).
 *
 * A root key has a prefix of its own (ROOT_KEY_PREFIX, by default `<KEY_PREFIX>_root`) and latchkey's
 * checksum, so a malformed one is refused before any storage. It lives in its own table: it never
 * verifies as a product key (the verifier answers NOT_FOUND for its shape, service/verify.ts), never
 * appears among a customer's keys, and is never in a key's lineage. It is read from D1 on every
 * request that presents it, never cached, so a revocation holds from the next request on everywhere;
 * the keys it created belong to their owners and keep working.
 *
 * The plaintext exists only in the create and rotate responses; D1 holds its SHA-256.
 */
import type { Config } from "../config";
import { generateKey, isWellFormedKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { UUID_V4 } from "../keys/key-id";
import { describeError, log } from "../log";
import type { Actor, RootKeyRecord } from "../model";
import type {
  CreateRootKeyInput,
  CreatedRootKeyView,
  ListRootKeysInput,
  RootKeyListView,
  RootKeyView,
  RotateKeyInput,
} from "../schemas";
import type { RootKeyStore } from "../store/root-keys";
import { decodeCursor, encodeCursor } from "./cursor";
import type { RootKeyViews } from "./read-views";
import { iso } from "./views";
import { ConflictError, NotFoundError, StorageMisconfiguredError } from "./errors";
import { DEFAULT_OWNER_PATTERNS, ROOT_SCOPES, requireOperator, rootKeyRefusal } from "./root-rules";
import { LAST_USED_INTERVAL_MS } from "./last-use";

export function toRootKeyView(r: RootKeyRecord): RootKeyView {
  return {
    id: r.id,
    name: r.name,
    start: r.start,
    owners: [...r.owners],
    scopes: [...r.scopes],
    allowed_ips: r.allowedIps === null ? null : [...r.allowedIps],
    created_by: r.createdBy,
    created_at: new Date(r.createdAt).toISOString(),
    expires_at: iso(r.expiresAt),
    revoked_at: iso(r.revokedAt),
    revoked_by: r.revokedBy,
    rotated_from: r.rotatedFrom,
    last_used_at: iso(r.lastUsedAt),
  };
}

/** What a presented root key is: live (with its record), or why not. */
export type RootVerification =
  | { readonly code: "VALID"; readonly root: RootKeyRecord }
  | { readonly code: "MALFORMED" | "NOT_FOUND" | "REVOKED" | "EXPIRED" | "IP_NOT_ALLOWED" };

const REFUSALS = { revoked: "REVOKED", expired: "EXPIRED", ip_not_allowed: "IP_NOT_ALLOWED" } as const;

export interface RootKeyDeps {
  readonly store: RootKeyStore;
  readonly config: Config;
  /** Runs work after the response (ctx.waitUntil). */
  readonly defer: (work: Promise<unknown>) => void;
  /** Where list and get read (read-views.ts); default: `store`. */
  readonly views?: RootKeyViews;
}

export class RootKeys {
  constructor(private readonly deps: RootKeyDeps) {}

  /** Is `candidate` presented as a root key (its prefix)? Decides how the Authorization header is read. */
  isRootCredential(candidate: string): boolean {
    const prefix = this.deps.config.rootKeyPrefix;
    return prefix !== null && candidate.startsWith(`${prefix}_`);
  }

  /**
   * The root key `key` is, read from D1 now (no cache): a malformed key is refused before any storage,
   * then an unknown, revoked or expired one, or one used from outside its allow-list.
   */
  async verify(key: string, ip: string | undefined): Promise<RootVerification> {
    const prefix = this.deps.config.rootKeyPrefix;
    if (prefix === null || !isWellFormedKey(key, prefix)) return { code: "MALFORMED" };
    const root = await this.deps.store.findByHash(await sha256Hex(key));
    if (root === null) return { code: "NOT_FOUND" };
    const now = Date.now();
    const refusal = rootKeyRefusal(root, now, ip);
    if (refusal !== null) return { code: REFUSALS[refusal] };
    if (root.lastUsedAt === null || now - root.lastUsedAt >= LAST_USED_INTERVAL_MS) {
      this.deps.defer(
        this.deps.store.touch(root.id, now).catch((error: unknown) => {
          log("warn", "root_key_touch_failed", { error: describeError(error) });
        }),
      );
    }
    return { code: "VALID", root };
  }

  /** A new root key, shown once. Only an operator; its owners and scopes default to everything. */
  async create(actor: Actor, input: CreateRootKeyInput): Promise<CreatedRootKeyView> {
    requireOperator(actor);
    const { key, record } = await this.newRootKey({
      name: input.name,
      owners: input.owners ?? [...DEFAULT_OWNER_PATTERNS],
      scopes: input.scopes ?? [...ROOT_SCOPES],
      allowedIps: input.allowed_ips ?? null,
      expiresAt: input.expires_at == null ? null : Date.parse(input.expires_at),
      createdBy: `user:${actor.sub}`,
      rotatedFrom: null,
      chain: null,
    });
    await this.deps.store.insert(record);
    log("info", "root_key_created", { root_key_id: record.id, by: record.createdBy, owners: record.owners.join(",") });
    return { ...toRootKeyView(record), key };
  }

  async list(actor: Actor, input: ListRootKeysInput): Promise<RootKeyListView> {
    requireOperator(actor);
    const cursor = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await (this.deps.views ?? this.deps.store).list({
      limit: input.limit + 1,
      includeRevoked: input.include_revoked,
      after: cursor && { createdAt: cursor.time, id: cursor.id },
    });
    const page = rows.slice(0, input.limit);
    const last = page[page.length - 1];
    return {
      data: page.map(toRootKeyView),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }

  async get(actor: Actor, id: string): Promise<RootKeyView> {
    requireOperator(actor);
    return toRootKeyView(await this.find(id, this.deps.views));
  }

  /**
   * A replacement with the same name, owners, scopes, expiry and allow-list (shown once); the old
   * root key then expires at the earlier of its own expiry and now + grace_seconds, as a key's
   * rotation does. A revoked or expired root key cannot be rotated (409).
   */
  async rotate(actor: Actor, id: string, input: RotateKeyInput): Promise<CreatedRootKeyView> {
    requireOperator(actor);
    const current = await this.find(id);
    const now = Date.now();
    if (current.revokedAt !== null) throw new ConflictError("The root key is revoked; create a new one instead");
    if (current.expiresAt !== null && current.expiresAt <= now) {
      throw new ConflictError("The root key has expired; create a new one instead");
    }
    const { key, record } = await this.newRootKey({
      ...current,
      createdBy: `user:${actor.sub}`,
      rotatedFrom: current.id,
    });
    const oldExpiresAt = Math.min(current.expiresAt ?? Infinity, now + input.grace_seconds * 1000);
    if (!(await this.deps.store.rotate(current, oldExpiresAt, record, now))) {
      throw new ConflictError("The root key is being changed by another request; retry");
    }
    log("info", "root_key_rotated", { root_key_id: current.id, replacement_id: record.id, by: record.createdBy });
    return { ...toRootKeyView(record), key };
  }

  /**
   * Revokes the root key (idempotent): refused from the next request on; the keys it made keep working.
   * The webhook endpoints of its chain are deleted with it, unless another key of the chain (its
   * rotation's replacement, or the key it replaced, still in its grace) is live.
   */
  async revoke(actor: Actor, id: string): Promise<void> {
    requireOperator(actor);
    await this.find(id);
    const revoked = await this.deps.store.revoke(id, Date.now(), `user:${actor.sub}`);
    if (revoked === null) throw new NotFoundError("root key");
    log("info", "root_key_revoked", { root_key_id: id, by: `user:${actor.sub}` });
  }

  /** The root key `id`, from `from` (a view, for a GET) or else the store of record (what a write decides on). */
  private async find(id: string, from: RootKeyViews = this.deps.store): Promise<RootKeyRecord> {
    const record = UUID_V4.test(id) ? await from.findById(id) : null;
    if (record === null) throw new NotFoundError("root key");
    return record;
  }

  /** `chain`: the chain it joins (a rotation's replacement: its predecessor's), or null to start its own. */
  private async newRootKey(
    settings: Pick<
      RootKeyRecord,
      "name" | "owners" | "scopes" | "allowedIps" | "expiresAt" | "createdBy" | "rotatedFrom"
    > & { readonly chain: string | null },
  ): Promise<{ key: string; record: RootKeyRecord }> {
    const prefix = this.deps.config.rootKeyPrefix;
    if (prefix === null) {
      throw new StorageMisconfiguredError("root keys are disabled: their prefix collides (see ROOT_KEY_PREFIX)");
    }
    const key = generateKey(prefix);
    const id = crypto.randomUUID();
    const record: RootKeyRecord = {
      id,
      hash: await sha256Hex(key),
      start: keyStart(key, prefix),
      name: settings.name,
      owners: [...settings.owners],
      scopes: [...settings.scopes],
      allowedIps: settings.allowedIps === null ? null : [...settings.allowedIps],
      createdBy: settings.createdBy,
      createdAt: Date.now(),
      expiresAt: settings.expiresAt,
      revokedAt: null,
      revokedBy: null,
      rotatedFrom: settings.rotatedFrom,
      chain: settings.chain ?? id,
      lastUsedAt: null,
    };
    return { key, record };
  }
}
