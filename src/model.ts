/**
 * The domain model shared by the service and the stores. Times are epoch milliseconds here and
 * RFC 3339 strings only at the API boundary (see `toApiKey` in service/views.ts).
 */
import type { LegacyFormat } from "./keys/legacy";
import type { KeyLimits } from "./keys/limit-arithmetic";

export type OwnerType = "user" | "workspace";

export interface Owner {
  readonly type: OwnerType;
  readonly id: string;
}

/** One API key as stored. Never holds the plaintext key; `hash` is its SHA-256. */
export interface KeyRecord {
  readonly id: string;
  readonly hash: string;
  readonly start: string;
  readonly name: string;
  readonly owner: Owner;
  readonly scopes: readonly string[];
  readonly resources: readonly string[] | null;
  /**
   * Who asked for the key and received its secret: `user:<sub>`, `key:<id>` or `service` (a trusted
   * Worker over RPC). A key's lineage is every key created, imported or rotated at its request
   * (`mintingKeyId`), and their lineages; cascading revocation follows it as well as `parentId`.
   */
  readonly createdBy: string;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly lastUsedAt: number | null;
  readonly metadata: Readonly<Record<string, unknown>> | null;
  /** An imported key's own format (keys/legacy.ts); absent for latchkey's keys. */
  readonly format?: LegacyFormat;
  /**
   * A bcrypt-imported key's hash (keys/legacy-digest.ts): its bcrypt hash until its first use, then
   * the SHA-256 of the whole token. Its `hash` is then where it is found (by its lookup id).
   */
  readonly legacyHash?: string;
  /**
   * The key that created or imported this one (then `created_by` = `key:<id>`), or null; a rotation's
   * replacement keeps its predecessor's. Cascading revocation follows it.
   */
  readonly parentId: string | null;
  /** False while the key is disabled: it fails with DISABLED until enabled again. */
  readonly enabled: boolean;
  /** The last change of any setting (revocation included); null when never changed since creation. */
  readonly updatedAt: number | null;
  /** The addresses and CIDR ranges the key may be used from; null: any. */
  readonly allowedIps: readonly string[] | null;
  /** The id of the key this one replaced by rotation. */
  readonly rotatedFrom: string | null;
  /** Rate limits and credits (keys/limit-arithmetic.ts); absent or null: none, and no counter is ever asked. */
  readonly limits?: KeyLimits | null;
  /** The key chain whose counters the key uses (store/counter.ts); absent: its own id. */
  readonly usageId?: string;
  /**
   * Its owner's limits (per-customer limits, keys/owner-usage.ts), read with the key; absent: the
   * owner has none, and a verification asks no owner counter.
   */
  readonly ownerLimits?: KeyLimits;
}

/** The key that asked for this key and received its secret (its `created_by`), or null for a person or service. */
export function mintingKeyId(record: Pick<KeyRecord, "createdBy">): string | null {
  return record.createdBy.startsWith("key:") ? record.createdBy.slice(4) : null;
}

export type AuditAction =
  | "created"
  | "imported"
  | "upgraded"
  | "updated"
  | "disabled"
  | "enabled"
  | "rotated"
  | "revoked"
  /** A report found the key leaked, and the leak's action (LEAK_ACTION) revoked or disabled it. */
  | "leaked"
  // Warnings latchkey writes on its own (service/warnings.ts, store/counter.ts), as actor WARNING_ACTOR.
  | "expiring"
  | "expired"
  | "credits_low"
  | "credits_exhausted";

/** What a confirmed leak does to the key (LEAK_ACTION). */
export type LeakAction = "revoke" | "disable";

/** The actor of the warnings latchkey writes on its own: no person, key or service asked for them. */
export const WARNING_ACTOR = "latchkey";

/** One change of a key, as the audit log holds it. Never holds a key, a hash or a JWT. */
export interface AuditEvent {
  readonly id: string;
  readonly keyId: string;
  readonly owner: Owner;
  readonly action: AuditAction;
  /** `user:<sub>`, `key:<id>`, `root:<id>` (a root key), `service`, `github` (a secret scanning report) or `latchkey` (a warning: WARNING_ACTOR). */
  readonly actor: string;
  readonly at: number;
  /** Each changed field with its old and new value (API names and formats). */
  readonly changes: Readonly<Record<string, { readonly old: unknown; readonly new: unknown }>>;
  readonly ip: string | null;
  readonly userAgent: string | null;
}

/**
 * What a verification decides on and a key actor acts with: the record without its name, display
 * start, lineage and metadata (but with what verification checks: enabled, allowedIps). The isolate's memory and KV hold only this, so a record's size is
 * its scopes and resources (see `memoryRecordBytes` in service/memory-record.ts).
 */
export type CompactRecord = Pick<
  KeyRecord,
  | "id"
  | "hash"
  | "owner"
  | "scopes"
  | "resources"
  | "expiresAt"
  | "revokedAt"
  | "lastUsedAt"
  | "format"
  | "legacyHash"
  | "enabled"
  | "allowedIps"
  | "limits"
  | "usageId"
  | "ownerLimits"
>;

export function compact(r: CompactRecord): CompactRecord {
  return {
    id: r.id,
    hash: r.hash,
    owner: r.owner,
    scopes: r.scopes,
    resources: r.resources,
    expiresAt: r.expiresAt,
    revokedAt: r.revokedAt,
    lastUsedAt: r.lastUsedAt,
    enabled: r.enabled,
    allowedIps: r.allowedIps,
    // An imported key counts only in its own format (service/verify.ts), so its format travels too.
    ...(r.format ? { format: r.format } : {}),
    // A bcrypt-imported key's check (its bcrypt hash, or once upgraded the SHA-256 of the whole token).
    ...(r.legacyHash ? { legacyHash: r.legacyHash } : {}),
    // Usage limits (and the counters they use) travel only when the key has them: keys without
    // limits carry no extra bytes.
    ...(r.limits ? { limits: r.limits, ...(r.usageId ? { usageId: r.usageId } : {}) } : {}),
    // Its owner's limits likewise: keys of owners without limits carry nothing for them.
    ...(r.ownerLimits ? { ownerLimits: r.ownerLimits } : {}),
  };
}

/** A root key's scopes: reading and writing the keys of the owners it covers. */
export type RootScope = "keys:read" | "keys:write";

/**
 * A root key as stored (its own table, never api_keys). Never holds the plaintext key; `hash` is its
 * SHA-256. `owners`: the owner patterns it covers (`user:*`, `workspace:acme`; service/root-rules.ts).
 */
export interface RootKeyRecord {
  readonly id: string;
  readonly hash: string;
  readonly start: string;
  readonly name: string;
  readonly owners: readonly string[];
  readonly scopes: readonly RootScope[];
  readonly allowedIps: readonly string[] | null;
  /** `user:<sub>` of the operator who made it. */
  readonly createdBy: string;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly revokedBy: string | null;
  readonly rotatedFrom: string | null;
  /**
   * Its chain: the id of the root key its rotations started from (its own id when it replaced none). A
   * root key's webhook endpoints belong to its chain (service/webhook-rules.ts).
   */
  readonly chain: string;
  readonly lastUsedAt: number | null;
}

/** Who is asking. */
export type Actor =
  /**
   * A person, authenticated by a JWT. `orgId` is their workspace, when the token names one; `roles`
   * are the token's roles claim; `workspaceAdmin` says whether they may create and revoke that
   * workspace's keys (WORKSPACE_ADMIN_ROLES), not only list and read them.
   */
  | {
      readonly kind: "user";
      readonly sub: string;
      readonly orgId: string | null;
      readonly roles: readonly string[];
      readonly workspaceAdmin: boolean;
      /** Holds one of OPERATOR_ROLES: may manage root keys, and nothing more by that role alone. */
      readonly operator: boolean;
    }
  /**
   * A machine, authenticated by a valid API key: acts for the key's owner, within the key's powers.
   * Authentication gives the cached compact record; management re-reads it from D1 (service/actor.ts).
   * `ip`: the address it authenticated from, checked again against the fresh record's allow-list.
   */
  | { readonly kind: "api_key"; readonly key: CompactRecord; readonly ip?: string | undefined }
  /** A trusted Worker calling over the service binding, on behalf of `owner`. */
  | { readonly kind: "service"; readonly owner: Owner }
  /**
   * A backend, authenticated by a live root key (read from D1 on every request): acts for any owner
   * its `owners` patterns cover, named in each request, within its scopes (service/root-rules.ts).
   */
  | { readonly kind: "root"; readonly root: RootKeyRecord };

export function sameOwner(a: Owner, b: Owner): boolean {
  return a.type === b.type && a.id === b.id;
}
