/**
 * The key lifecycle: create, list, get, revoke and verify, on behalf of an Actor. Both the HTTP
 * routes and the RPC entrypoint call this; it knows no HTTP and no SQL.
 *
 * Authorization lives here: a person manages their own keys, reads their workspace's, and creates
 * and revokes those only as a workspace admin; a key manages its owner's keys only with `keys:read` /
 * `keys:write`, and may only create or revoke keys no more powerful than itself (attenuation: scopes
 * it covers, a subset of its resources, an expiry no later than its own).
 *
 * Usage limits (keys/usage.ts) are powers too: a key with limits makes only keys that share its
 * limits and its counters (so a child is never a way around its parent's credits), and may not
 * change anyone's credits.
 */
import { generateKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { UUID_V4 } from "../keys/legacy";
import { firstUncovered, grants, resourcesWithin } from "../keys/scopes";
import { type KeyLimits, hasLimits } from "../keys/usage";
import { type Actor, type KeyRecord, type Owner, sameOwner } from "../model";
import type {
  ApiKeyView,
  CreateKeyInput,
  ImportKeyInput,
  ImportKeysInput,
  ImportResultView,
  CreatedApiKeyView,
  CreditsInput,
  CreditsResultView,
  KeyListView,
  ListKeysInput,
  UsageQueryInput,
  UsageReportView,
  VerifyChecks,
  VerifyResultView,
  WhoAmIView,
} from "../schemas";
import { USAGE_OUTCOMES } from "../schemas";
import { ForbiddenError, NotFoundError, ValidationError } from "./errors";
import { StorageUnavailableError } from "../store/store";
import { type ServiceDeps, type Verification, Verifier, usageIdOf } from "./verify";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Usage buckets: a day of hours or 30 days by default; at most 31 days of hours or 366 days. */
const DEFAULT_USAGE_BUCKETS = { hour: 24, day: 30 } as const;
const MAX_USAGE_BUCKETS = { hour: 31 * 24, day: 366 } as const;

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
    ratelimits: (r.limits?.ratelimits ?? []).map((limit) => ({ ...limit })),
    credits: r.limits?.credits ? { remaining: r.limits.credits.remaining, refill: r.limits.credits.refill } : null,
  };
}

function verdictView({ code, record, usage }: Verification): VerifyResultView {
  return {
    valid: code === "VALID",
    code,
    key_id: record?.id ?? null,
    owner: record ? { type: record.owner.type, id: record.owner.id } : null,
    scopes: record ? [...record.scopes] : [],
    resources: record?.resources ? [...record.resources] : null,
    expires_at: record ? iso(record.expiresAt) : null,
    ...(usage?.credits ? { credits: { remaining: usage.credits.remaining } } : {}),
    ...(usage && usage.ratelimits.length > 0 ? { ratelimits: usage.ratelimits.map((limit) => ({ ...limit })) } : {}),
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
    throw new ForbiddenError("role", "Only a workspace admin may create, change or revoke workspace keys");
  }
}

export class Keys {
  readonly verifier: Verifier;

  constructor(private readonly deps: ServiceDeps) {
    this.verifier = new Verifier(deps);
  }

  async create(actor: Actor, input: CreateKeyInput): Promise<CreatedApiKeyView> {
    this.requireScope(actor, "keys:write");
    const powers = this.authorizeNewKey(actor, input);
    const key = generateKey(this.deps.config.keyPrefix);
    const record: KeyRecord = {
      id: crypto.randomUUID(),
      hash: await sha256Hex(key),
      start: keyStart(key, this.deps.config.keyPrefix),
      name: input.name,
      ...powers,
      createdAt: Date.now(),
      revokedAt: null,
      lastUsedAt: null,
      metadata: input.metadata ?? null,
      ...this.limitsForNewKey(actor, input),
    };
    await this.deps.store.insert(record);
    this.verifier.remember(record);
    // A key sharing its maker's counters shows the shared balance as it is now.
    return { ...(record.usageId ? await this.liveView(record) : toApiKey(record)), key };
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
        if (error instanceof ForbiddenError) throw new ForbiddenError(`keys.${i}.${error.exceeded}`, error.message);
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
        ...this.limitsForNewKey(actor, {}),
      });
    }
    if (Object.keys(errors).length > 0) throw new ValidationError(errors);

    // A hash repeated in the batch conflicts with its first occurrence, in the same transaction.
    const inserted = await this.deps.store.insertNew(records);
    const stored = new Map<string, string>();
    records.forEach((record, i) => {
      if (!inserted[i]) return;
      stored.set(record.hash, record.id);
      this.verifier.remember(record);
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
      data: await Promise.all(page.map((record) => this.liveView(record))),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last) : null,
    };
  }

  async get(actor: Actor, id: string): Promise<ApiKeyView> {
    this.requireScope(actor, "keys:read");
    return this.liveView(await this.findVisible(actor, id));
  }

  /**
   * Changes the credit balance of a key (and so of its whole chain: a rotated key shares it). The
   * same authorization as a revoke; a key with limits of its own may not do it at all, or it could
   * top up its own balance.
   */
  async adjustCredits(actor: Actor, id: string, input: CreditsInput): Promise<CreditsResultView> {
    this.requireScope(actor, "keys:write");
    const record = await this.findVisible(actor, id);
    this.requireManagement(actor, record, "The key");
    if (actor.kind === "api_key" && hasLimits(actor.key.limits)) {
      throw new ForbiddenError("credits", "A key with usage limits may not change credits");
    }
    const rule = record.limits?.credits;
    if (!rule) throw new ValidationError({ credits: ["This key has no credits: give it credits when creating it"] });
    const remaining = await this.counters().adjust(usageIdOf(record), rule, input.op, input.amount);
    return { remaining };
  }

  /**
   * A key's verifications per hour or day (UTC) by outcome. Counts reach D1 in batches, so the last
   * half minute may not be in yet (service/usage.ts).
   */
  async usage(actor: Actor, id: string, query: UsageQueryInput): Promise<UsageReportView> {
    this.requireScope(actor, "keys:read");
    const record = await this.findVisible(actor, id);
    const step = query.granularity === "hour" ? HOUR_MS : DAY_MS;
    const to = query.to === undefined ? Date.now() : Date.parse(query.to);
    // Default: the bucket holding `to` and the ones before it.
    const requested =
      query.from === undefined ? to - (DEFAULT_USAGE_BUCKETS[query.granularity] - 1) * step : Date.parse(query.from);
    const from = requested - (requested % step);
    if (from >= to) throw new ValidationError({ from: ["Must be before `to`"] }, "query");
    const buckets = Math.ceil((to - from) / step);
    if (buckets > MAX_USAGE_BUCKETS[query.granularity]) {
      throw new ValidationError(
        { from: [`The range may span at most ${MAX_USAGE_BUCKETS[query.granularity]} ${query.granularity}s`] },
        "query",
      );
    }
    const views = Array.from({ length: buckets }, (_, i) => ({
      start: new Date(from + i * step).toISOString(),
      total: 0,
      ...(Object.fromEntries(USAGE_OUTCOMES.map((code) => [code.toLowerCase(), 0])) as Record<
        Lowercase<(typeof USAGE_OUTCOMES)[number]>,
        number
      >),
    }));
    for (const { hour, outcome, count } of await this.usageStore().read(record.id, from, to)) {
      const bucket = views[Math.floor((hour - from) / step)];
      const field = outcome.toLowerCase() as Lowercase<(typeof USAGE_OUTCOMES)[number]>;
      if (!bucket || !(field in bucket)) continue;
      bucket[field] += count;
      bucket.total += count;
    }
    return { key_id: record.id, granularity: query.granularity, buckets: views };
  }

  /** The key's view with its credit balance as it is now (one counter call, only for a key with credits). */
  private async liveView(record: KeyRecord): Promise<ApiKeyView> {
    const view = toApiKey(record);
    if (!view.credits || !record.limits) return view;
    const usage = await this.counters().take(usageIdOf(record), record.limits, 0);
    return { ...view, credits: { ...view.credits, remaining: usage.credits?.remaining ?? view.credits.remaining } };
  }

  private usageStore() {
    if (!this.deps.usageStore) throw new StorageUnavailableError("no usage store");
    return this.deps.usageStore;
  }

  private counters() {
    if (!this.deps.counters) throw new StorageUnavailableError("usage counters are not bound (USAGE_COUNTER)");
    return this.deps.counters;
  }

  /**
   * Revokes the key; revoking a revoked key is a no-op. Keys it created are left alone (see README).
   * A person needs the admin role for a workspace key; a key may revoke only keys no more powerful
   * than itself (the attenuation rule, applied to management).
   */
  async revoke(actor: Actor, id: string): Promise<void> {
    this.requireScope(actor, "keys:write");
    const record = await this.findVisible(actor, id);
    this.requireManagement(actor, record, "The key to revoke");
    // Already revoked (elsewhere, or by a call whose answer was lost): still evict it here.
    const revoked = record.revokedAt !== null ? record : await this.deps.store.revoke(id, Date.now());
    if (!revoked) throw new NotFoundError();
    await this.verifier.forget(revoked);
  }

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

  /**
   * The limits of a new key: those asked for, or, for a key made by a key with limits, that key's
   * limits and counters (it may not ask for others: a child is never a way around its parent's).
   */
  private limitsForNewKey(
    actor: Actor,
    input: Pick<CreateKeyInput, "ratelimits" | "credits">,
  ): Pick<KeyRecord, "limits" | "usageId"> {
    const parent = actor.kind === "api_key" ? actor.key : null;
    if (parent && hasLimits(parent.limits)) {
      const asked = input.ratelimits !== undefined ? "ratelimits" : input.credits !== undefined ? "credits" : null;
      if (asked) {
        throw new ForbiddenError(
          asked,
          "The key making this request has usage limits: the keys it makes share its limits and counters",
        );
      }
      return { limits: parent.limits, usageId: usageIdOf(parent) };
    }
    const limits: KeyLimits = { ratelimits: input.ratelimits ?? [], credits: input.credits ?? null };
    return hasLimits(limits) ? { limits } : {};
  }

  private requireScope(actor: Actor, scope: string): void {
    if (actor.kind === "api_key" && !grants(actor.key.scopes, scope)) {
      throw new ForbiddenError("scopes", `This key lacks the ${scope} scope`);
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
