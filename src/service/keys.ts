/**
 * The key lifecycle: create, list, get, revoke and verify, on behalf of an Actor. Both the HTTP
 * routes and the RPC entrypoint call this; it knows no HTTP and no SQL.
 *
 * Authorization lives here: a person manages their own keys, reads their workspace's, and creates
 * and revokes those only as a workspace admin; a key manages its owner's keys only with `keys:read` /
 * `keys:write`, and may only create or revoke keys no more powerful than itself (attenuation: scopes
 * it covers, a subset of its resources, an expiry no later than its own).
 */
import { generateKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { UUID_V4 } from "../keys/legacy";
import { firstUncovered, grants, resourcesWithin } from "../keys/scopes";
import { type Actor, type KeyRecord, type Owner, sameOwner } from "../model";
import type {
  DeadKeyCode,
  LiveKeyCode,
  ApiKeyView,
  CreateKeyInput,
  ImportKeyInput,
  ImportKeysInput,
  ImportResultView,
  CreatedApiKeyView,
  KeyListView,
  ListKeysInput,
  RevokeKeyInput,
  VerifyChecks,
  VerifyResultView,
  WhoAmIView,
} from "../schemas";
import { describeError, log } from "../log";
import { type IdempotencyClaim, IdempotencyConflict } from "../store/store";
import { recheckActor } from "./actor";
import {
  CredentialNotLiveError,
  ForbiddenError,
  IdempotencyKeyReusedError,
  IdempotentReplayError,
  LimitExceededError,
  NotFoundError,
  ValidationError,
} from "./errors";
import { IDEMPOTENCY_TTL_MS } from "./operations";
import { type ServiceDeps, type Verification, Verifier } from "./verify";

/** The period of the KEY_CREATION_LIMITER binding (wrangler.toml), for Retry-After. */
export const CREATION_RETRY_AFTER_SECONDS = 60;

/** The most KV copies one revoke deletes itself (a cascade may revoke thousands of keys). */
const MAX_KV_DELETES = 50;

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

/** The verdict as the API shows it: a dead or unknown key gets only its code and id (README, "Verify says less"). */
function verdictView({ code, record, keyId }: Verification): VerifyResultView {
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

/** The powers a key has, as far as attenuation compares them. */
type Powers = Pick<KeyRecord, "scopes" | "resources" | "expiresAt">;

/**
 * Attenuation: `key` (`what`, for messages) must be no more powerful than `holder`, the key making
 * the request: scopes it covers, resources within its own, an expiry no later than its own. Throws a
 * ForbiddenError naming the first power exceeded.
 */
function requireWithin(holder: Powers, key: Powers, what: string): void {
  const uncovered = firstUncovered(holder.scopes, key.scopes);
  if (uncovered !== undefined) {
    throw new ForbiddenError(
      "scopes",
      `Scope "${uncovered}" is not covered by the scopes of the key making this request`,
    );
  }
  if (!resourcesWithin(holder.resources, key.resources)) {
    throw new ForbiddenError(
      "resources",
      `${what}'s resources must be a subset of the resources of the key making this request`,
    );
  }
  if (holder.expiresAt !== null && (key.expiresAt === null || key.expiresAt > holder.expiresAt)) {
    throw new ForbiddenError(
      "expires_at",
      `${what} must expire no later than the key making this request (${iso(holder.expiresAt)})`,
    );
  }
}

/** Only a workspace admin (WORKSPACE_ADMIN_ROLES) creates, changes or revokes workspace keys. */
function requireWorkspaceAdmin(actor: Extract<Actor, { kind: "user" }>): void {
  if (!actor.workspaceAdmin) {
    throw new ForbiddenError("role", "Only a workspace admin may create, change or revoke workspace keys", "role");
  }
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
  async create(caller: Actor, input: CreateKeyInput, idempotencyKey?: string): Promise<CreatedApiKeyView> {
    this.requireScope(caller, "keys:write");
    const actor = await recheckActor(this.deps, this.verifier, caller);
    this.requireScope(actor, "keys:write");
    const powers = this.authorizeNewKey(actor, input);
    await this.limitCreation(powers.owner);
    const key = generateKey(this.deps.config.keyPrefix);
    const now = Date.now();
    const record: KeyRecord = {
      id: crypto.randomUUID(),
      hash: await sha256Hex(key),
      start: keyStart(key, this.deps.config.keyPrefix),
      name: input.name,
      ...powers,
      createdAt: now,
      revokedAt: null,
      lastUsedAt: null,
      metadata: input.metadata ?? null,
      parentId: actor.kind === "api_key" ? actor.key.id : null,
    };
    const claim =
      idempotencyKey === undefined ? undefined : await idempotencyClaim(actor, idempotencyKey, ["create", input]);
    const maxKeysPerOwner = this.deps.config.maxKeysPerOwner;
    let stored: Awaited<ReturnType<ServiceDeps["store"]["insert"]>>;
    try {
      stored = await this.deps.store.insert(record, { maxKeysPerOwner, now }, claim);
    } catch (error) {
      if (!(error instanceof IdempotencyConflict)) throw error;
      if (error.requestHash === claim?.requestHash) throw new IdempotentReplayError(error.keyId);
      throw new IdempotencyKeyReusedError();
    }
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

  /**
   * Registers existing keys by hash, all or nothing: every item is checked (and authorized as a
   * create would be) before any is stored. A hash already stored, or repeated in the batch, is a
   * conflict, reported per item.
   */
  async import(actor: Actor, input: ImportKeysInput): Promise<ImportResultView> {
    this.requireScope(actor, "keys:write");
    const errors: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
    const records: KeyRecord[] = [];
    for (const [i, item] of input.keys.entries()) {
      const problem = await this.importProblem(item);
      if (problem) {
        errors[`keys.${i}.${problem.field}`] = [problem.message];
        continue;
      }
      let powers: ReturnType<Keys["authorizeNewKey"]>;
      try {
        powers = this.authorizeNewKey(actor, item);
      } catch (error) {
        if (error instanceof ForbiddenError) {
          throw new ForbiddenError(`keys.${i}.${error.exceeded}`, error.message, error.kind);
        }
        if (error instanceof ValidationError) {
          for (const [field, messages] of Object.entries(error.errors)) errors[`keys.${i}.${field}`] = messages;
          continue;
        }
        throw error;
      }
      records.push({
        id: crypto.randomUUID(),
        hash: item.hash,
        start: item.start ?? "",
        name: item.name,
        ...powers,
        createdAt: item.created_at === undefined ? Date.now() : Date.parse(item.created_at),
        revokedAt: null,
        lastUsedAt: null,
        metadata: item.metadata ?? null,
        format: item.format ?? "opaque",
        parentId: null,
      });
    }
    if (Object.keys(errors).length > 0) throw new ValidationError(errors);

    // A hash repeated in the batch conflicts with its first occurrence, in the same transaction.
    const inserted = await this.deps.store.insertNew(records);
    const stored = new Map<string, string>();
    records.forEach((record, i) => {
      if (!inserted[i]) return;
      stored.set(record.hash, record.id);
      // Read from D1 on first use (with its feed position); only a cached "unknown" must go.
      this.verifier.known(record.hash);
    });
    const results = records.map((record) => {
      const id = stored.get(record.hash) ?? null;
      stored.delete(record.hash); // a repeat of the same hash later in the batch is a conflict
      return { hash: record.hash.slice(0, 12), status: id ? ("imported" as const) : ("conflict" as const), id };
    });
    const imported = results.filter((r) => r.status === "imported").length;
    return { imported, conflicts: results.length - imported, results };
  }

  /** Why this deployment cannot take the item, or null: its format must be enabled, and the key must not be in it. */
  private async importProblem(item: ImportKeyInput): Promise<{ field: string; message: string } | null> {
    const formats = this.deps.config.legacyFormats;
    const format = item.format ?? "opaque";
    if (format === "sanctum" ? !formats.sanctum : formats.prefixes.length === 0) {
      return {
        field: "format",
        message: `${format} keys are not accepted here: the operator enables them with LEGACY_KEY_FORMATS`,
      };
    }
    if (format === "opaque" && item.start !== undefined && !formats.prefixes.some((p) => item.start!.startsWith(p))) {
      return { field: "start", message: `Must begin with an accepted prefix (${formats.prefixes.join(", ")})` };
    }
    const leaked = await fieldHoldingKey(item);
    return leaked === null ? null : { field: leaked, message: "Holds the key itself: send only its SHA-256 in hash" };
  }

  /** The per-owner creation rate (KEY_CREATION_LIMITER). A failing limiter is logged and lets the create through. */
  private async limitCreation(owner: Owner): Promise<void> {
    const limiter = this.deps.creationLimiter;
    if (!limiter) return;
    let success = true;
    try {
      ({ success } = await limiter.limit({ key: `${owner.type}:${owner.id}` }));
    } catch (error) {
      log("warn", "key_creation_limiter_failed", { error: describeError(error) });
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
   * Without it, keys it created are left alone (see README). A person needs the admin role for a
   * workspace key; a key may revoke only keys no more powerful than itself (the attenuation rule,
   * applied to management).
   */
  async revoke(caller: Actor, id: string, options: RevokeKeyInput = { cascade: false }): Promise<void> {
    this.requireScope(caller, "keys:write");
    const actor = await recheckActor(this.deps, this.verifier, caller);
    this.requireScope(actor, "keys:write");
    const record = await this.findVisible(actor, id);
    this.requireManagement(actor, record, "The key to revoke");
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
    return verdictView(await this.verifier.verify(key, options));
  }

  /** The verdict from this isolate's memory alone, or null when it would take storage (see Verifier). */
  async verifyFromMemory(key: string, options: VerifyChecks = {}): Promise<VerifyResultView | null> {
    const verification = await this.verifier.fromMemory(key, options);
    return verification && verdictView(verification);
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

  /**
   * Who owns a new key and what it may do, for this actor: a key may only make keys weaker than
   * itself (scopes it covers, resources within its own, an expiry no later than its own), and by
   * default a child inherits all three.
   */
  private authorizeNewKey(
    actor: Actor,
    input: Pick<CreateKeyInput, "owner" | "scopes" | "resources" | "expires_at">,
  ): Pick<KeyRecord, "owner" | "scopes" | "resources" | "expiresAt" | "createdBy"> {
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

    if (parent) requireWithin(parent, { scopes, resources, expiresAt }, "The new key");
    const createdBy =
      actor.kind === "user" ? `user:${actor.sub}` : actor.kind === "api_key" ? `key:${actor.key.id}` : "service";
    return { owner, scopes, resources, expiresAt, createdBy };
  }

  private requireScope(actor: Actor, scope: string): void {
    if (actor.kind === "api_key" && !grants(actor.key.scopes, scope)) {
      throw new ForbiddenError("scopes", `This key lacks the ${scope} scope`, "scope");
    }
  }

  /**
   * May the actor change or revoke `record` (which it can see)? A person: their own keys, and their
   * workspace's if they are a workspace admin. A key: keys no more powerful than itself. A trusted
   * service: any key of its owner.
   */
  private requireManagement(actor: Actor, record: KeyRecord, what: string): void {
    if (actor.kind === "user" && record.owner.type === "workspace") requireWorkspaceAdmin(actor);
    if (actor.kind === "api_key") requireWithin(actor.key, record, what);
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
        requireWorkspaceAdmin(actor);
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

/** Pieces of a string that could be a key: the whole, and its words of key length. */
function keyCandidates(text: string): string[] {
  return [text, ...text.split(/[\s|,;]+/).filter((word) => word.length >= 16 && word !== text)];
}

/**
 * The field of an import item that holds the key whose hash it carries (a plaintext pasted into
 * `name`, `start`, metadata or a resource), or null.
 */
async function fieldHoldingKey(item: ImportKeyInput): Promise<string | null> {
  const pending = Object.entries(item)
    .filter(([field]) => field !== "hash")
    .map(([field, value]): [unknown, string] => [value, field]);
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [value, path] = next;
    if (typeof value === "string") {
      for (const candidate of keyCandidates(value)) if ((await sha256Hex(candidate)) === item.hash) return path;
    } else if (typeof value === "object" && value !== null) {
      for (const [key, inner] of Object.entries(value)) pending.push([inner, `${path}.${key}`]);
    }
  }
  return null;
}
