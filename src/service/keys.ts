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
  ApiKeyView,
  CreateKeyInput,
  CreatedApiKeyView,
  KeyListView,
  ListKeysInput,
  VerifyChecks,
  VerifyResultView,
  WhoAmIView,
} from "../schemas";
import { type IdempotencyClaim, IdempotencyConflict } from "../store/store";
import {
  ForbiddenError,
  IdempotencyKeyReusedError,
  IdempotentReplayError,
  NotFoundError,
  ValidationError,
} from "./errors";
import { IDEMPOTENCY_TTL_MS } from "./operations";
import { type ServiceDeps, Verifier } from "./verify";

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

/** Who made a request, for scoping Idempotency-Keys: one caller's key never matches another's. */
function callerOf(actor: Actor): string {
  switch (actor.kind) {
    case "user":
      return `user:${actor.sub}`;
    case "api_key":
      return `key:${actor.key.id}`;
    case "service":
      return `service:${actor.owner.type}:${actor.owner.id}`;
  }
}

/** The claim an idempotent request makes: its caller, the key's hash, and the hash of what it asks. */
async function idempotencyClaim(actor: Actor, idempotencyKey: string, request: unknown): Promise<IdempotencyClaim> {
  return {
    caller: callerOf(actor),
    keyHash: await sha256Hex(idempotencyKey),
    requestHash: await sha256Hex(JSON.stringify(request)),
    expiredBefore: Date.now() - IDEMPOTENCY_TTL_MS,
  };
}

export class Keys {
  readonly verifier: Verifier;

  constructor(private readonly deps: ServiceDeps) {
    this.verifier = new Verifier(deps);
  }

  /**
   * Creates a key. With `idempotencyKey`, a repeat of the same request by the same caller within
   * IDEMPOTENCY_TTL_MS creates nothing: it fails with IdempotentReplayError naming the key the first
   * one created (whose plaintext is not stored, so cannot be shown again), and the same
   * idempotencyKey with different input fails with IdempotencyKeyReusedError.
   */
  async create(actor: Actor, input: CreateKeyInput, idempotencyKey?: string): Promise<CreatedApiKeyView> {
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

    const key = generateKey(this.deps.config.keyPrefix);
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
      createdAt: Date.now(),
      expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      metadata: input.metadata ?? null,
    };
    const claim =
      idempotencyKey === undefined ? undefined : await idempotencyClaim(actor, idempotencyKey, ["create", input]);
    try {
      await this.deps.store.insert(record, claim);
    } catch (error) {
      if (!(error instanceof IdempotencyConflict)) throw error;
      if (error.requestHash === claim?.requestHash) throw new IdempotentReplayError(error.keyId);
      throw new IdempotencyKeyReusedError();
    }
    this.verifier.remember(record);
    return { ...toApiKey(record), key };
  }

  async list(actor: Actor, input: ListKeysInput): Promise<KeyListView> {
    this.requireScope(actor, "keys:read");
    const after = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await this.deps.store.list({
      owners: this.visibleOwners(actor),
      limit: input.limit + 1,
      includeRevoked: input.include_revoked,
      after,
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

  /** Revokes the key; revoking a revoked key is a no-op. Keys it created are left alone (see README). */
  async revoke(actor: Actor, id: string): Promise<void> {
    this.requireScope(actor, "keys:write");
    const record = await this.findVisible(actor, id);
    // Already revoked (elsewhere, or by a call whose answer was lost): still evict it here.
    const revoked = record.revokedAt !== null ? record : await this.deps.store.revoke(id, Date.now());
    if (!revoked) throw new NotFoundError();
    await this.verifier.forget(revoked);
  }

  async verify(key: string, options: VerifyChecks = {}): Promise<VerifyResultView> {
    const { code, record } = await this.verifier.verify(key, options);
    return {
      valid: code === "VALID",
      code,
      key_id: record?.id ?? null,
      owner: record ? { type: record.owner.type, id: record.owner.id } : null,
      scopes: record ? [...record.scopes] : [],
      resources: record?.resources ? [...record.resources] : null,
      expires_at: record ? iso(record.expiresAt) : null,
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
      throw new ForbiddenError("scopes", `This key lacks the ${scope} scope`, "scope");
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
