/**
 * The key lifecycle: create, list, get, revoke and verify, on behalf of an Actor. Both the HTTP
 * routes and the RPC entrypoint call this; it knows no HTTP and no SQL.
 *
 * Authorization lives here: a person manages their own keys and their workspace's; a key manages
 * its owner's keys only with `keys:read` / `keys:write`, and may only create keys weaker than itself
 * (attenuation: scopes it covers, a subset of its resources, an expiry no later than its own).
 */
import { generateKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { firstUncovered, grants, resourcesWithin } from "../keys/scopes";
import { type Actor, type KeyRecord, type Owner, sameOwner } from "../model";
import type {
  DeadKeyCode,
  LiveKeyCode,
  ApiKeyView,
  CreateKeyInput,
  CreatedApiKeyView,
  KeyListView,
  ListKeysInput,
  RevokeKeyInput,
  VerifyChecks,
  VerifyResultView,
  WhoAmIView,
} from "../schemas";
import { describeError } from "../log";
import { recheckActor } from "./actor";
import { CredentialNotLiveError, ForbiddenError, LimitExceededError, NotFoundError, ValidationError } from "./errors";
import { type ServiceDeps, Verifier } from "./verify";

/** The period of the KEY_CREATION_LIMITER binding (wrangler.toml), for Retry-After. */
export const CREATION_RETRY_AFTER_SECONDS = 60;

/** The most KV copies one revoke deletes itself (a cascade may revoke thousands of keys). */
const MAX_KV_DELETES = 50;

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function toApiKey(r: KeyRecord): ApiKeyView {
  return {
    id: r.id,
    name: r.name,
    start: r.start,
    owner_type: r.owner.type,
    owner_id: r.owner.id,
    scopes: [...r.scopes],
    resources: r.resources === null ? null : [...r.resources],
    created_by: r.createdBy,
    created_at: new Date(r.createdAt).toISOString(),
    expires_at: iso(r.expiresAt),
    revoked_at: iso(r.revokedAt),
    last_used_at: iso(r.lastUsedAt),
    metadata: r.metadata === null ? null : { ...r.metadata },
    parent_id: r.parentId,
  };
}

/** The opaque list cursor: the (created_at, id) of the last key of the page. */
function encodeCursor(r: KeyRecord): string {
  return btoa(JSON.stringify([r.createdAt, r.id]))
    .replace(/=+$/, "")
    .replace(/\+/g, "-")
    .replace(/\//g, "_");
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const value: unknown = JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/")));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === "string" &&
      UUID_V4.test(value[1])
    ) {
      return { createdAt: value[0] as number, id: value[1] };
    }
  } catch {
    // fall through
  }
  throw new ValidationError({ cursor: ["Invalid cursor: pass next_cursor from a previous page"] }, "query");
}

export class Keys {
  readonly verifier: Verifier;

  constructor(private readonly deps: ServiceDeps) {
    this.verifier = new Verifier(deps);
  }

  async create(caller: Actor, input: CreateKeyInput): Promise<CreatedApiKeyView> {
    this.requireScope(caller, "keys:write");
    const actor = await recheckActor(this.deps, this.verifier, caller);
    this.requireScope(actor, "keys:write");
    const owner = this.ownerForNewKey(actor, input.owner);
    const parent = actor.kind === "api_key" ? actor.key : null;

    const scopes = input.scopes ?? (parent ? [...parent.scopes] : ["*"]);
    const resources = input.resources !== undefined ? input.resources : (parent?.resources ?? null);
    const expiresAt =
      input.expires_at !== undefined
        ? input.expires_at === null
          ? null
          : Date.parse(input.expires_at)
        : (parent?.expiresAt ?? null);

    if (parent) {
      const uncovered = firstUncovered(parent.scopes, scopes);
      if (uncovered !== undefined) {
        throw new ForbiddenError(
          "scopes",
          `Scope "${uncovered}" is not covered by the scopes of the key making this request`,
        );
      }
      if (!resourcesWithin(parent.resources, resources)) {
        throw new ForbiddenError(
          "resources",
          "The new key's resources must be a subset of the resources of the key making this request",
        );
      }
      if (parent.expiresAt !== null && (expiresAt === null || expiresAt > parent.expiresAt)) {
        throw new ForbiddenError(
          "expires_at",
          `The new key must expire no later than the key making this request (${iso(parent.expiresAt)})`,
        );
      }
    }

    await this.limitCreation(owner);
    const key = generateKey(this.deps.config.keyPrefix);
    const now = Date.now();
    const record: KeyRecord = {
      id: crypto.randomUUID(),
      hash: await sha256Hex(key),
      start: keyStart(key, this.deps.config.keyPrefix),
      name: input.name,
      owner,
      scopes,
      resources,
      createdBy:
        actor.kind === "user" ? `user:${actor.sub}` : actor.kind === "api_key" ? `key:${actor.key.id}` : "service",
      createdAt: now,
      expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      metadata: input.metadata ?? null,
      parentId: parent?.id ?? null,
    };
    const maxKeysPerOwner = this.deps.config.maxKeysPerOwner;
    const stored = await this.deps.store.insert(record, { maxKeysPerOwner, now });
    if ("refused" in stored) {
      if (stored.refused === "parent_not_live") throw new CredentialNotLiveError();
      throw new LimitExceededError(
        "MAX_KEYS_PER_OWNER",
        `This owner already holds ${maxKeysPerOwner} live keys, the most allowed (MAX_KEYS_PER_OWNER); revoke some first`,
      );
    }
    this.verifier.remember(record, stored.seq);
    return { ...toApiKey(record), key };
  }

  /** The per-owner creation rate (KEY_CREATION_LIMITER). A failing limiter is logged and lets the create through. */
  private async limitCreation(owner: Owner): Promise<void> {
    const limiter = this.deps.creationLimiter;
    if (!limiter) return;
    let success = true;
    try {
      ({ success } = await limiter.limit({ key: `${owner.type}:${owner.id}` }));
    } catch (error) {
      console.warn(`latchkey: key creation limiter failed: ${describeError(error)}`);
    }
    if (!success) {
      throw new LimitExceededError(
        "KEY_CREATION_LIMITER",
        "Too many keys created for this owner; wait before creating more",
        CREATION_RETRY_AFTER_SECONDS,
      );
    }
  }

  async list(actor: Actor, input: ListKeysInput): Promise<KeyListView> {
    this.requireScope(actor, "keys:read");
    const after = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await this.deps.store.list({
      owners: this.visibleOwners(actor),
      limit: input.limit + 1,
      includeRevoked: input.include_revoked,
      after,
      createdBy: input.created_by,
      ownerType: input.owner_type,
      status: input.status,
      now: Date.now(),
    });
    const page = rows.slice(0, input.limit);
    const last = page[page.length - 1];
    return {
      data: page.map(toApiKey),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last) : null,
    };
  }

  async get(actor: Actor, id: string): Promise<ApiKeyView> {
    this.requireScope(actor, "keys:read");
    return toApiKey(await this.findVisible(actor, id));
  }

  /**
   * Revokes the key (idempotent), and with `cascade` every key descending from it, in one write.
   * Without it, keys it created are left alone (see README).
   */
  async revoke(caller: Actor, id: string, options: RevokeKeyInput = { cascade: false }): Promise<void> {
    this.requireScope(caller, "keys:write");
    const actor = await recheckActor(this.deps, this.verifier, caller);
    this.requireScope(actor, "keys:write");
    const record = await this.findVisible(actor, id);
    // Already revoked (elsewhere, or by a call whose answer was lost): still evict it here.
    const revoked =
      record.revokedAt !== null && !options.cascade
        ? [record]
        : await this.deps.store.revoke(id, Date.now(), options.cascade);
    if (revoked.length === 0) throw new NotFoundError();
    // The feed tells every other isolate; here, each is refused from the next request on. KV copies
    // are deleted for the first few only (each is a subrequest): the feed makes any other copy untrusted.
    await Promise.all(revoked.map((r, i) => this.verifier.forget(r, i < MAX_KV_DELETES)));
  }

  /**
   * The verdict. For a key that is dead or unknown (MALFORMED, NOT_FOUND, REVOKED, EXPIRED) only its
   * id: whoever holds a dead key learns nothing of its owner or powers. A refusal of a live key for
   * this one request (INSUFFICIENT_SCOPE, RESOURCE_NOT_ALLOWED) keeps the details the caller needs.
   */
  async verify(key: string, options: VerifyChecks = {}): Promise<VerifyResultView> {
    const { code, record, keyId } = await this.verifier.verify(key, options);
    if (record === null) return { valid: false, code: code as DeadKeyCode, key_id: keyId };
    return {
      valid: code === "VALID",
      code: code as LiveKeyCode,
      key_id: record.id,
      owner: { type: record.owner.type, id: record.owner.id },
      scopes: [...record.scopes],
      resources: record.resources ? [...record.resources] : null,
      expires_at: iso(record.expiresAt),
    };
  }

  whoami(actor: Actor): WhoAmIView {
    switch (actor.kind) {
      case "user":
        return { principal: "user", owner_type: "user", owner_id: actor.sub, org_id: actor.orgId };
      case "api_key":
        return {
          principal: "api_key",
          owner_type: actor.key.owner.type,
          owner_id: actor.key.owner.id,
          key_id: actor.key.id,
          scopes: [...actor.key.scopes],
        };
      case "service":
        throw new ForbiddenError("principal", "whoami is for people and keys");
    }
  }

  private requireScope(actor: Actor, scope: string): void {
    if (actor.kind === "api_key" && !grants(actor.key.scopes, scope)) {
      throw new ForbiddenError("scopes", `This key lacks the ${scope} scope`);
    }
  }

  /** Whose keys the actor may see and manage. */
  private visibleOwners(actor: Actor): Owner[] {
    switch (actor.kind) {
      case "user":
        return actor.orgId === null
          ? [{ type: "user", id: actor.sub }]
          : [
              { type: "user", id: actor.sub },
              { type: "workspace", id: actor.orgId },
            ];
      case "api_key":
        return [actor.key.owner];
      case "service":
        return [actor.owner];
    }
  }

  private ownerForNewKey(actor: Actor, requested: "user" | "workspace" | undefined): Owner {
    switch (actor.kind) {
      case "user":
        if (requested !== "workspace") return { type: "user", id: actor.sub };
        if (actor.orgId === null) {
          throw new ValidationError({ owner: ["Your token names no workspace, so it cannot own a workspace key"] });
        }
        return { type: "workspace", id: actor.orgId };
      case "api_key":
        if (requested !== undefined && requested !== actor.key.owner.type) {
          throw new ForbiddenError(
            "owner",
            `A ${actor.key.owner.type} key can only create ${actor.key.owner.type} keys`,
          );
        }
        return actor.key.owner;
      case "service":
        if (requested !== undefined && requested !== actor.owner.type) {
          throw new ValidationError({ owner: [`Must be "${actor.owner.type}" or absent for this owner`] });
        }
        return actor.owner;
    }
  }

  private async findVisible(actor: Actor, id: string): Promise<KeyRecord> {
    if (!UUID_V4.test(id)) throw new NotFoundError();
    const record = await this.deps.store.findById(id);
    if (!record || !this.visibleOwners(actor).some((owner) => sameOwner(owner, record.owner))) {
      throw new NotFoundError();
    }
    return record;
  }
}
