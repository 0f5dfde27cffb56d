/**
 * The key lifecycle: create, list, get, update, rotate, revoke and verify, and the audit log, on
 * behalf of an Actor. Both the HTTP routes and the RPC entrypoint call this; it knows no HTTP and no SQL.
 *
 * Authorization: the rules are pure functions in rules.ts (attenuation, management, visibility, the
 * owner and powers of a new key, trusted import); this file reads the rows each write reaches and
 * applies them there. A write by a key that reaches more rows than the one it names (the keys sharing
 * usage counters, a cascade's lineage) needs the power to manage every one of them, and the rows as
 * read are pinned by a guard in the write (store.ts, ReachGuard), so a concurrent change cannot slip
 * between the check and the write. Narrowing a key is refused while stronger live keys of its lineage
 * remain; a rotated-away key's expiry may only be brought forward.
 *
 * Lineage: a key created, imported or rotated at a key's request is in that key's lineage (its
 * `created_by`), and a cascading revocation follows it as well as `parent_id`. Every key a key asks
 * for is stored only if the asking key is still live, and every key counts against the owner's quota
 * and the creation limiter, whether created, imported or rotated.
 *
 * Every change writes one audit event per key it changes, in the same store write as the change.
 *
 * Usage limits (keys/usage.ts) belong to a key chain's counters: a rotated key and the keys made by a
 * key with limits share their predecessor's or maker's counters (usage_id), so neither is a way
 * around a balance. A key with limits makes only keys with its own limits, and may not change any
 * key's limits or credits (it could otherwise lift its own through a child or sibling).
 */
import { generateKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { UUID_V4 } from "../keys/key-id";
import { type KeyLimits, hasLimits, recordCreditsOp, usageFields } from "../keys/limit-arithmetic";
import {
  type Actor,
  type AuditAction,
  type AuditEvent,
  type KeyRecord,
  type Owner,
  mintingKeyId,
  sameOwner,
} from "../model";
import type {
  DeadKeyCode,
  LiveKeyCode,
  ApiKeyView,
  CreateKeyInput,
  ImportKeyInput,
  ImportKeysInput,
  ImportResultView,
  CreatedApiKeyView,
  EventListView,
  CreditsInput,
  CreditsResultView,
  KeyListView,
  ListEventsInput,
  ListKeysInput,
  RevokeKeyInput,
  RotateKeyInput,
  UpdateKeyInput,
  UsageQueryInput,
  UsageReportView,
  VerifyChecks,
  VerifyResultView,
  WhoAmIView,
} from "../schemas";
import { describeError, log } from "../log";
import {
  ConcurrentChangeError,
  type IdempotencyClaim,
  IdempotencyConflict,
  type InsertRefusal,
  type KeyChanges,
  type ReachGuard,
} from "../store/store";
import { recheckActor } from "./actor";
import { importedDigest } from "./import-format";
import { toEventView } from "./audit-view";
import {
  ConflictError,
  CredentialNotLiveError,
  ForbiddenError,
  IdempotencyKeyReusedError,
  IdempotentReplayError,
  LimitExceededError,
  LineageConflictError,
  NotFoundError,
  StorageUnavailableError,
  ValidationError,
} from "./errors";
import { IDEMPOTENCY_TTL_MS } from "./operations";
import { USAGE_FLUSH_MS } from "./usage-tally";
import {
  type Powers,
  authorizeNewKey,
  chainOf,
  limitsForNewKey,
  mayImport,
  requireManagement,
  requireManagementOfAll,
  requireNoLimitsOf,
  requireSameCounters,
  requireScope,
  requireWithin,
  exceededPower,
  rotatedExpiryAllowed,
  strongerThan,
  visibleOwners,
} from "./rules";
import { type ServiceDeps, type Verification, Verifier, usageIdOf } from "./verify";
import { USAGE_OUTCOMES } from "../schemas";

const HOUR_MS = 3_600_000;
/** Usage buckets: a day of hours or 30 days by default; at most 31 days of hours or 366 days. */
const DEFAULT_USAGE_BUCKETS = { hour: 24, day: 30 } as const;
const MAX_USAGE_BUCKETS = { hour: 31 * 24, day: 366 } as const;

/** The period of the KEY_CREATION_LIMITER binding (wrangler.toml), for Retry-After. */
export const CREATION_RETRY_AFTER_SECONDS = 60;

/** The most KV copies one revoke deletes itself (a cascade may revoke thousands of keys). */
const MAX_KV_DELETES = 50;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A key's usage limits as the API shows them (credits: the rule; views with a live balance override it). */
function limitsView(limits: KeyLimits | null | undefined): Pick<ApiKeyView, "ratelimits" | "credits"> {
  const credits = limits?.credits ?? null;
  return {
    ratelimits: (limits?.ratelimits ?? []).map(({ name, limit, duration_ms }) => ({ name, limit, duration_ms })),
    credits: credits ? { remaining: credits.remaining, refill: credits.refill ? { ...credits.refill } : null } : null,
  };
}

/** How an actor is named in `created_by` and in audit events. */
function actorName(actor: Actor): string {
  return actor.kind === "user" ? `user:${actor.sub}` : actor.kind === "api_key" ? `key:${actor.key.id}` : "service";
}

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
    enabled: r.enabled,
    updated_at: new Date(r.updatedAt ?? r.createdAt).toISOString(),
    allowed_ips: r.allowedIps === null ? null : [...r.allowedIps],
    rotated_from: r.rotatedFrom,
    ...limitsView(r.limits),
  };
}

/** The verdict as the API shows it: a dead or unknown key gets only its code and id (docs/api.md, "Verify says less about dead keys"). */
function verdictView({ code, record, keyId, usage }: Verification): VerifyResultView {
  if (record === null) return { valid: false, code: code as DeadKeyCode, key_id: keyId };
  return {
    valid: code === "VALID",
    code: code as LiveKeyCode,
    key_id: record.id,
    owner: { type: record.owner.type, id: record.owner.id },
    scopes: [...record.scopes],
    resources: record.resources ? [...record.resources] : null,
    expires_at: iso(record.expiresAt),
    enabled: record.enabled,
    ...usageFields(usage),
  };
}

/** The opaque list cursor: the (time, id) of the last item of the page (a key's creation, an event's time). */
function encodeCursor(time: number, id: string): string {
  return btoa(JSON.stringify([time, id]))
    .replace(/=+$/, "")
    .replace(/\+/g, "-")
    .replace(/\//g, "_");
}

function decodeCursor(cursor: string): { time: number; id: string } {
  try {
    const value: unknown = JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/")));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === "string" &&
      UUID_V4.test(value[1])
    ) {
      return { time: value[0] as number, id: value[1] };
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

/**
 * The limits after a PATCH (undefined: neither field given). Rate limits given replace the list;
 * credits given replace the rule and `set` the balance to `remaining` (the running totals carry on,
 * so the counter applies the set exactly once); null removes them.
 */
function patchedLimits(
  current: KeyLimits | null | undefined,
  input: Pick<UpdateKeyInput, "ratelimits" | "credits">,
  at: number,
): KeyLimits | null | undefined {
  if (input.ratelimits === undefined && input.credits === undefined) return undefined;
  const before = current?.credits ?? null;
  const credits =
    input.credits === undefined
      ? before
      : input.credits === null
        ? null
        : recordCreditsOp({ ...(before ?? {}), ...input.credits }, "set", input.credits.remaining, at);
  const limits: KeyLimits = { ratelimits: input.ratelimits ?? current?.ratelimits ?? [], credits };
  return hasLimits(limits) ? limits : null;
}

type FieldChanges = Record<string, { old: unknown; new: unknown }>;

/** The settings an update may change: API field, record field, and the API form of a record value. */
const UPDATABLE_FIELDS = [
  ["name", "name", (v: KeyRecord["name"]) => v],
  ["metadata", "metadata", (v: KeyRecord["metadata"]) => v],
  ["enabled", "enabled", (v: KeyRecord["enabled"]) => v],
  ["expires_at", "expiresAt", iso],
  ["scopes", "scopes", (v: KeyRecord["scopes"]) => v],
  ["resources", "resources", (v: KeyRecord["resources"]) => v],
  ["allowed_ips", "allowedIps", (v: KeyRecord["allowedIps"]) => v],
] as const;

/** A new key's settings as an event's changes (each from null). */
function creationChanges(r: KeyRecord): FieldChanges {
  const changes: FieldChanges = {};
  for (const [field, recordField, toApi] of UPDATABLE_FIELDS) {
    changes[field] = { old: null, new: (toApi as (v: unknown) => unknown)(r[recordField]) };
  }
  changes.owner = { old: null, new: `${r.owner.type}:${r.owner.id}` };
  if (r.rotatedFrom !== null) changes.rotated_from = { old: null, new: r.rotatedFrom };
  if (r.format !== undefined) changes.format = { old: null, new: r.format };
  if (r.limits) {
    const { ratelimits, credits } = limitsView(r.limits);
    changes.ratelimits = { old: null, new: ratelimits };
    changes.credits = { old: null, new: credits };
  }
  return changes;
}

/** How many times an update or rotation re-reads a key that changed under it before answering 409. */
const CONCURRENT_ATTEMPTS = 3;

/**
 * Runs `write` (read, check, conditional write) again while it reports a concurrent change (null, or
 * a guarded write's ConcurrentChangeError), at most CONCURRENT_ATTEMPTS times, then answers 409.
 */
async function retryOnConcurrentChange<T>(write: () => Promise<T | null>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let result: T | null = null;
    try {
      result = await write();
    } catch (error) {
      if (!(error instanceof ConcurrentChangeError)) throw error;
    }
    if (result !== null) return result;
    if (attempt === CONCURRENT_ATTEMPTS) throw new ConflictError("The key is being changed by another request; retry");
  }
}

/** A conditional insert's refusal in the service's words. */
function refusal(refused: InsertRefusal, maxKeysPerOwner: number): Error {
  if (refused === "parent_not_live") return new CredentialNotLiveError();
  return new LimitExceededError(
    "MAX_KEYS_PER_OWNER",
    `This owner already holds ${maxKeysPerOwner} live keys, the most allowed (MAX_KEYS_PER_OWNER); revoke some first`,
  );
}

const IMPORT_REFUSED =
  "Importing keys is for workspace admins (their workspace's keys) and trusted services; the operator allows it to people and keys with IMPORT_ALLOWED=personal";
/** Retention purges delete this many events per statement, at most PURGE_BATCHES statements per run. */
const PURGE_BATCH = 1000;
const PURGE_BATCHES = 50;
const DAY_MS = 86_400_000;
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
    const actor = await this.writer(caller);
    const { owner, ...powers } = authorizeNewKey(actor, input);
    await this.limitCreation(owner);
    const { key, record } = await this.newKey(actor, {
      name: input.name,
      owner,
      metadata: input.metadata ?? null,
      rotatedFrom: null,
      parentId: actor.kind === "api_key" ? actor.key.id : null,
      ...powers,
      ...limitsForNewKey(actor, input),
    });
    const claim =
      idempotencyKey === undefined ? undefined : await idempotencyClaim(actor, idempotencyKey, ["create", input]);
    const maxKeysPerOwner = this.deps.config.maxKeysPerOwner;
    const event = this.event(actor, record, "created", creationChanges(record), record.createdAt);
    let stored: Awaited<ReturnType<ServiceDeps["store"]["insert"]>>;
    try {
      stored = await this.deps.store.insert(record, event, { maxKeysPerOwner, now: record.createdAt }, claim);
    } catch (error) {
      if (!(error instanceof IdempotencyConflict)) throw error;
      if (error.requestHash === claim?.requestHash) throw new IdempotentReplayError(error.keyId);
      throw new IdempotencyKeyReusedError();
    }
    if ("refused" in stored) throw refusal(stored.refused, maxKeysPerOwner);
    this.verifier.remember(record, stored.seq);
    // A key sharing its maker's counters shows the shared balance as it is now.
    return { ...(record.usageId ? await this.liveView(record) : toApiKey(record)), key };
  }

  /**
   * Changes a key's settings; fields left out are unchanged. A patch that changes nothing writes
   * nothing and returns the key as it is. The actor must be allowed to manage the key
   * (`requireManagement`), and a key making the request is bound by attenuation: the key it leaves
   * behind must be within its own powers.
   */
  async update(caller: Actor, id: string, input: UpdateKeyInput): Promise<ApiKeyView> {
    const actor = await this.writer(caller);
    const patch: KeyChanges = {
      name: input.name,
      metadata: input.metadata,
      enabled: input.enabled,
      expiresAt:
        input.expires_at === undefined || input.expires_at === null ? input.expires_at : Date.parse(input.expires_at),
      scopes: input.scopes,
      resources: input.resources,
      allowedIps: input.allowed_ips,
    };
    if (input.ratelimits !== undefined || input.credits !== undefined) {
      requireNoLimitsOf(actor, input.ratelimits !== undefined ? "ratelimits" : "credits");
    }
    return retryOnConcurrentChange(async () => {
      const current = await this.findVisible(actor, id);
      requireManagement(actor, current, "The key to change");
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; a revoked key cannot be changed");

      const changes: FieldChanges = {};
      const apply: Record<string, unknown> = {};
      const limits = patchedLimits(current.limits, input, Date.now());
      if (limits !== undefined) {
        const [before, after] = [limitsView(current.limits), limitsView(limits)];
        if (input.ratelimits !== undefined && JSON.stringify(before.ratelimits) !== JSON.stringify(after.ratelimits)) {
          changes.ratelimits = { old: before.ratelimits, new: after.ratelimits };
        }
        // Credits given are a `set`: a change even when the rule reads the same (the balance is reset).
        if (input.credits !== undefined && (input.credits !== null || before.credits !== null)) {
          changes.credits = { old: before.credits, new: after.credits };
        }
        if (changes.ratelimits || changes.credits) apply.limits = limits;
      }
      for (const [field, recordField, toApi] of UPDATABLE_FIELDS) {
        const value = patch[recordField];
        if (value === undefined) continue;
        const before = (toApi as (v: unknown) => unknown)(current[recordField]);
        const after = (toApi as (v: unknown) => unknown)(value);
        if (JSON.stringify(before) === JSON.stringify(after)) continue;
        changes[field] = { old: before, new: after };
        apply[recordField] = value;
      }
      if (Object.keys(changes).length === 0) return this.liveView(current);

      const next: KeyRecord = { ...current, ...(apply as KeyChanges) };
      if (actor.kind === "api_key") requireWithin(actor.key, next, "The changed key");
      const guards = [
        ...(apply.limits === undefined ? [] : await this.chainGuard(actor, current)),
        ...(await this.lineageGuard(current, next)),
      ];
      await this.requireWithinMinters(current, next);
      if (apply.expiresAt !== undefined) await this.requireRotatedExpiry(current, next);

      const at = Date.now();
      const action: AuditAction = changes.enabled ? (next.enabled ? "enabled" : "disabled") : "updated";
      const event = this.event(actor, current, action, changes, at);
      const seq = await this.deps.store.update(current, apply as KeyChanges, event, guards);
      if (seq === null) return null;
      const updated = { ...next, updatedAt: at };
      await this.verifier.changed(updated, seq);
      // Limits are the whole chain's (store.update changed its other keys too): the view shows the live balance.
      if (apply.limits === undefined) return toApiKey(updated);
      await this.verifier.catchUp();
      return this.liveView(updated);
    });
  }

  /**
   * Chain-wide powers: a change of limits or credits changes every key sharing the counters, so a key
   * making it must be allowed to manage each of them. The guard pins the chain as read.
   */
  private async chainGuard(actor: Actor, current: KeyRecord): Promise<ReachGuard[]> {
    if (actor.kind !== "api_key") return [];
    const { records, guard } = await this.deps.store.reach("chain", chainOf(current));
    requireManagementOfAll(actor, records, "The key shares its usage counters with");
    return [guard];
  }

  /**
   * Narrowing reaches the lineage: a change that takes a power from `current` is refused (409) while a
   * live key of its lineage would keep that power. The guard pins the lineage as read.
   */
  private async lineageGuard(current: KeyRecord, next: Powers): Promise<ReachGuard[]> {
    if (exceededPower(next, current) === null) return [];
    const now = Date.now();
    const { records, guard } = await this.deps.store.reach("tree", current.id);
    const live = records.filter((r) => r.id !== current.id && (r.expiresAt === null || r.expiresAt > now));
    const stronger = strongerThan(next, live);
    if (stronger.length > 0) {
      throw new LineageConflictError(
        `Keys of this key's lineage would keep powers it loses: ${stronger.join(", ")}; narrow or revoke them first`,
        stronger,
      );
    }
    return [guard];
  }

  /**
   * No key is stronger than a key that minted it (its parent, and the key that asked for it): a change
   * that widens a key beyond a minting key that is not revoked is refused (409 naming it), whoever asks.
   * An expired minting key still binds (a PATCH may extend it again); revoking it frees the key.
   */
  private async requireWithinMinters(current: KeyRecord, next: KeyRecord): Promise<void> {
    if (exceededPower(current, next) === null) return;
    const ids = [...new Set([current.parentId, mintingKeyId(current)])].filter((id): id is string => id !== null);
    const minters = await Promise.all(ids.map((id) => this.deps.store.findById(id)));
    const outgrown = minters
      .filter((m): m is KeyRecord => m !== null && m.revokedAt === null)
      .filter((m) => exceededPower(m, next) !== null)
      .map((m) => m.id);
    if (outgrown.length > 0) {
      throw new LineageConflictError(
        `The key would be stronger than the key that minted it: ${outgrown.join(", ")}; widen or revoke that key first`,
        outgrown,
      );
    }
  }

  /** A rotated-away key's expiry may be shortened, never extended or cleared (409 naming its replacement). */
  private async requireRotatedExpiry(current: KeyRecord, next: KeyRecord): Promise<void> {
    const replacement = await this.deps.store.replacementOf(current.id);
    if (replacement !== null && !rotatedExpiryAllowed(current.expiresAt, next.expiresAt)) {
      throw new LineageConflictError(
        `The key was rotated (its replacement is ${replacement}): its expiry may be brought forward, never extended or removed`,
        [replacement],
      );
    }
  }

  /**
   * Replaces the key with a new one (returned once) that copies its name, owner, scopes, resources,
   * metadata, expiry and allow-list; the old key then expires at the earlier of its own expiry and now
   * + grace_seconds. Revoked and expired keys cannot be rotated (409). The actor must be allowed to
   * manage the key (`requireManagement`). The replacement is always a latchkey key: an imported key
   * rotates onto latchkey's own format.
   */
  async rotate(caller: Actor, id: string, input: RotateKeyInput): Promise<CreatedApiKeyView> {
    const actor = await this.writer(caller);
    let limited = false;
    return retryOnConcurrentChange(async () => {
      const current = await this.findVisible(actor, id);
      requireManagement(actor, current, "The key to rotate");
      requireSameCounters(actor, current);
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; create a new key instead");
      const now = Date.now();
      if (current.expiresAt !== null && current.expiresAt <= now) {
        throw new ConflictError("The key has expired; create a new key instead");
      }
      if (!limited) await this.limitCreation(current.owner);
      limited = true;

      const oldExpiresAt = Math.min(current.expiresAt ?? Infinity, now + input.grace_seconds * 1000);
      // The replacement stays in the old key's lineage (parent_id), so a cascading revocation still
      // reaches it, and joins the lineage of the key asking (created_by), which receives its secret.
      // It also shares the old key's usage counters (usage_id) and limits: one balance for both, never two.
      const { key, record } = await this.newKey(actor, {
        ...current,
        rotatedFrom: current.id,
        usageId: chainOf(current),
      });
      const rotated = this.event(
        actor,
        current,
        "rotated",
        {
          expires_at: { old: iso(current.expiresAt), new: iso(oldExpiresAt) },
          rotated_to: { old: null, new: record.id },
        },
        now,
      );
      const created = this.event(actor, record, "created", creationChanges(record), now);
      const maxKeysPerOwner = this.deps.config.maxKeysPerOwner;
      const stored = await this.deps.store.rotate(current, oldExpiresAt, record, [rotated, created], {
        maxKeysPerOwner,
        now,
      });
      if (stored === null) return null;
      if ("refused" in stored) throw refusal(stored.refused, maxKeysPerOwner);
      await this.verifier.changed({ ...current, expiresAt: oldExpiresAt }, stored.seq);
      this.verifier.remember(record, stored.seq);
      // It shares the old key's balance: shown as it is now.
      return { ...(await this.liveView(record)), key };
    });
  }

  /**
   * Registers existing keys by hash, all or nothing: every item is checked (and authorized as a
   * create would be) before any is stored. A hash already stored, or repeated in the batch, is a
   * conflict, reported per item. Each imported key gets one `imported` audit event, in the same
   * store write (a conflict writes none).
   */
  async import(caller: Actor, input: ImportKeysInput): Promise<ImportResultView> {
    const actor = await this.writer(caller);
    const errors: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
    const records: KeyRecord[] = [];
    const now = Date.now();
    for (const [i, item] of input.keys.entries()) {
      const digest = await importedDigest(item, this.deps.config);
      if ("field" in digest) {
        errors[`keys.${i}.${digest.field}`] = [digest.message];
        continue;
      }
      let powers: ReturnType<typeof authorizeNewKey>;
      try {
        powers = authorizeNewKey(actor, item);
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
      if (!mayImport(actor, powers.owner, this.deps.config.importAllowed)) {
        throw new ForbiddenError(`keys.${i}.owner`, IMPORT_REFUSED);
      }
      records.push({
        id: crypto.randomUUID(),
        hash: digest.hash,
        start: item.start ?? "",
        name: item.name,
        ...powers,
        createdBy: actorName(actor),
        createdAt: item.created_at === undefined ? now : Date.parse(item.created_at),
        revokedAt: null,
        lastUsedAt: item.last_used_at === undefined ? null : Date.parse(item.last_used_at),
        metadata: item.metadata ?? null,
        format: digest.format,
        ...(digest.legacyHash === undefined ? {} : { legacyHash: digest.legacyHash }),
        parentId: actor.kind === "api_key" ? actor.key.id : null,
        enabled: true,
        updatedAt: null,
        rotatedFrom: null,
        ...limitsForNewKey(actor, {}),
      });
    }
    if (Object.keys(errors).length > 0) throw new ValidationError(errors);

    // Quotas as for a create: an import of N counts N, against the limiter and MAX_KEYS_PER_OWNER.
    for (const record of records) await this.limitCreation(record.owner);
    // A hash repeated in the batch conflicts with its first occurrence, in the same transaction.
    const maxKeysPerOwner = this.deps.config.maxKeysPerOwner;
    const outcome = await this.deps.store.insertNew(
      records,
      records.map((record) => this.event(actor, record, "imported", creationChanges(record), now)),
      { maxKeysPerOwner, now },
    );
    if ("refused" in outcome) throw refusal(outcome.refused, maxKeysPerOwner);
    const { inserted } = outcome;
    await this.logForeignConflicts(actor, records, inserted);
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

  /**
   * A conflict with another owner's key answers exactly as any conflict (`conflict`, no id), so an
   * import tells no one whose a hash is; the operator learns of it from this warning (no hash in full).
   */
  private async logForeignConflicts(actor: Actor, records: KeyRecord[], inserted: boolean[]): Promise<void> {
    const seen = new Set<string>();
    for (const [i, record] of records.entries()) {
      if (seen.has(record.hash)) continue;
      seen.add(record.hash);
      if (inserted[i]) continue;
      const existing = (await this.deps.store.findByHash(record.hash))?.record;
      if (!existing || sameOwner(existing.owner, record.owner)) continue;
      log("warn", "import_conflict_other_owner", {
        actor: actorName(actor),
        owner: `${record.owner.type}:${record.owner.id}`,
        existing_key_id: existing.id,
        existing_owner: `${existing.owner.type}:${existing.owner.id}`,
        hash_prefix: record.hash.slice(0, 12),
      });
    }
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
    requireScope(actor, "keys:read");
    const cursor = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await this.deps.store.list({
      owners: visibleOwners(actor),
      limit: input.limit + 1,
      includeRevoked: input.include_revoked,
      after: cursor && { createdAt: cursor.time, id: cursor.id },
      createdBy: input.created_by,
      ownerType: input.owner_type,
      status: input.status,
      now: Date.now(),
    });
    const page = rows.slice(0, input.limit);
    const last = page[page.length - 1];
    return {
      data: await Promise.all(page.map((record) => this.liveView(record))),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }

  async get(actor: Actor, id: string): Promise<ApiKeyView> {
    requireScope(actor, "keys:read");
    return this.liveView(await this.findVisible(actor, id));
  }

  /**
   * Changes the credit balance of a key (and so of its whole chain: a rotated key shares it). The
   * same authorization as a PATCH; a key with limits of its own may not do it at all, or it could
   * top up its own balance. The operation is recorded in the key's limits (`recordCreditsOp`) with its
   * audit event in one store write, and the counter applies it exactly once on its next call.
   */
  async adjustCredits(caller: Actor, id: string, input: CreditsInput): Promise<CreditsResultView> {
    const actor = await this.writer(caller);
    requireNoLimitsOf(actor, "credits");
    return retryOnConcurrentChange(async () => {
      const current = await this.findVisible(actor, id);
      requireManagement(actor, current, "The key");
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; its credits cannot be changed");
      const rule = current.limits?.credits;
      if (!current.limits || !rule) {
        throw new ConflictError("The key has no credits: give it credits with PATCH /v1/keys/{id} first");
      }
      const guards = await this.chainGuard(actor, current);
      const at = Date.now();
      const limits: KeyLimits = { ...current.limits, credits: recordCreditsOp(rule, input.op, input.amount, at) };
      const changes = { credits: { old: null, new: { op: input.op, amount: input.amount } } };
      const event = this.event(actor, current, "updated", changes, at);
      const seq = await this.deps.store.update(current, { limits }, event, guards);
      if (seq === null) return null;
      const updated = { ...current, limits, updatedAt: at };
      await this.verifier.changed(updated, seq);
      await this.verifier.catchUp();
      return { remaining: await this.balance(updated) };
    });
  }

  /**
   * The chain's credit balance now (a peek: one counter call), or null when the counter cannot answer:
   * the operation is recorded in D1 all the same and applies at the counter's next call.
   */
  private async balance(record: KeyRecord): Promise<number | null> {
    if (!record.limits) return null;
    try {
      const usage = await this.counters().take(usageIdOf(record), record.limits, 0);
      return usage.credits?.remaining ?? null;
    } catch (error) {
      log("warn", "usage_counter_unavailable", { error: describeError(error) });
      return null;
    }
  }

  /**
   * A key's verifications per hour or day (UTC) by outcome. Counts reach D1 in batches, so the last
   * half minute may not be in yet (service/usage.ts).
   */
  async usage(actor: Actor, id: string, query: UsageQueryInput): Promise<UsageReportView> {
    requireScope(actor, "keys:read");
    const record = await this.findVisible(actor, id);
    const step = query.granularity === "hour" ? HOUR_MS : DAY_MS;
    const now = Date.now();
    const to = query.to === undefined ? now : Date.parse(query.to);
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
    // Counts reach D1 a flush interval late (or later, on a quiet isolate): say so rather than show a bare 0.
    const pending = now - USAGE_FLUSH_MS;
    const pendingFrom = to > pending ? new Date(Math.max(pending, from)).toISOString() : null;
    return { key_id: record.id, granularity: query.granularity, buckets: views, pending_from: pendingFrom };
  }

  /**
   * The key's view with its credit balance as it is now (one counter call, only for a live key with
   * credits). A revoked key is shown as stored and never reaches the counter: limit changes are written
   * to a chain's unrevoked keys only, so its rule may be older than the chain's, and a peek applies the
   * rule it is given (a refill). A counter that cannot answer leaves the stored balance in the view:
   * a created or rotated key's one showing of its plaintext must never be lost to it.
   */
  private async liveView(record: KeyRecord): Promise<ApiKeyView> {
    const view = toApiKey(record);
    if (!view.credits || record.revokedAt !== null) return view;
    const remaining = await this.balance(record);
    return remaining === null ? view : { ...view, credits: { ...view.credits, remaining } };
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
   * Revokes the key (idempotent), and with `cascade` every key descending from it, in one write.
   * Without it, keys it created are left alone (docs/permissions.md, "Lineage"). A person needs the admin role for a
   * workspace key; a key may revoke only keys no more powerful than itself (the attenuation rule,
   * applied to management).
   */
  async revoke(caller: Actor, id: string, options: RevokeKeyInput = { cascade: false }): Promise<void> {
    const actor = await this.writer(caller);
    const revoked = await retryOnConcurrentChange(async () => {
      const record = await this.findVisible(actor, id);
      requireManagement(actor, record, "The key to revoke");
      // Already revoked (elsewhere, or by a call whose answer was lost): still evict it here.
      if (record.revokedAt !== null && !options.cascade) return [record];
      // Chain-wide powers: a key's cascade revokes only what it may manage, as the lineage was read.
      let guard: ReachGuard | undefined;
      if (options.cascade && actor.kind === "api_key") {
        const tree = await this.deps.store.reach("tree", record.id);
        requireManagementOfAll(actor, tree.records, "The cascade would revoke");
        guard = tree.guard;
      }
      const origin = { actor: actorName(actor), ...this.origin() };
      return this.deps.store.revoke(id, Date.now(), options.cascade, origin, guard);
    });
    if (revoked.length === 0) throw new NotFoundError();
    // The feed tells every other isolate; here, each is refused from the next request on. KV copies
    // are deleted for the first few only (each is a subrequest): the feed makes any other copy untrusted.
    await Promise.all(revoked.map((r, i) => this.verifier.forget(r, i < MAX_KV_DELETES)));
  }

  /** One key's audit events, newest first (the key may be revoked). */
  async keyEvents(actor: Actor, id: string, input: ListEventsInput): Promise<EventListView> {
    requireScope(actor, "keys:read");
    const record = await this.findVisible(actor, id);
    return this.events(actor, [record.owner], record.id, input);
  }

  /** The audit events of every owner whose keys the actor sees, newest first. */
  async listEvents(actor: Actor, input: ListEventsInput): Promise<EventListView> {
    requireScope(actor, "keys:read");
    return this.events(actor, visibleOwners(actor), null, input);
  }

  /** Retention (a scheduled task): deletes events older than the configured days, in bounded batches. */
  async purgeAuditEvents(now: number = Date.now()): Promise<number> {
    const before = now - this.deps.config.auditRetentionDays * DAY_MS;
    let deleted = 0;
    for (let batch = 0; batch < PURGE_BATCHES; batch++) {
      const count = await this.deps.store.purgeEvents(before, PURGE_BATCH);
      deleted += count;
      if (count < PURGE_BATCH) break;
    }
    return deleted;
  }

  /**
   * The verdict. For a key that is dead or unknown (MALFORMED, NOT_FOUND, REVOKED, EXPIRED, DISABLED,
   * IP_NOT_ALLOWED) only its id: whoever holds a dead key, or uses one from elsewhere, learns nothing
   * of its owner or powers. A refusal of a live key for this one request (INSUFFICIENT_SCOPE,
   * RESOURCE_NOT_ALLOWED) keeps the details the caller needs.
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
          enabled: actor.key.enabled,
        };
      case "service":
        throw new ForbiddenError("principal", "whoami is for people and keys");
    }
  }

  private async events(
    actor: Actor,
    owners: Owner[],
    keyId: string | null,
    input: ListEventsInput,
  ): Promise<EventListView> {
    const cursor = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await this.deps.store.listEvents({
      owners,
      keyId,
      action: input.action ?? null,
      since: input.since === undefined ? null : Date.parse(input.since),
      until: input.until === undefined ? null : Date.parse(input.until),
      limit: input.limit + 1,
      after: cursor && { at: cursor.time, id: cursor.id },
    });
    const page = rows.slice(0, input.limit);
    const last = page[page.length - 1];
    return {
      data: page.map((e) => toEventView(e, actor)),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last.at, last.id) : null,
    };
  }

  /** A fresh key and its record, made by `actor` now (not yet stored). */
  private async newKey(
    actor: Actor,
    settings: Pick<KeyRecord, "name" | "owner" | "metadata" | "rotatedFrom" | "parentId" | "limits" | "usageId"> &
      Powers,
  ): Promise<{ key: string; record: KeyRecord }> {
    const key = generateKey(this.deps.config.keyPrefix);
    const record: KeyRecord = {
      id: crypto.randomUUID(),
      hash: await sha256Hex(key),
      start: keyStart(key, this.deps.config.keyPrefix),
      name: settings.name,
      owner: settings.owner,
      scopes: [...settings.scopes],
      resources: settings.resources === null ? null : [...settings.resources],
      createdBy: actorName(actor),
      createdAt: Date.now(),
      expiresAt: settings.expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      metadata: settings.metadata,
      enabled: true,
      updatedAt: null,
      allowedIps: settings.allowedIps === null ? null : [...settings.allowedIps],
      rotatedFrom: settings.rotatedFrom,
      parentId: settings.parentId,
      ...(hasLimits(settings.limits) ? { limits: settings.limits } : {}),
      ...(settings.usageId ? { usageId: settings.usageId } : {}),
    };
    return { key, record };
  }

  /**
   * An audit event of `actor` changing `record`, from where the call came. Imports write one
   * `imported` event per key through this, with `creationChanges(record)`, in the same store batch.
   */
  private event(actor: Actor, record: KeyRecord, action: AuditAction, changes: FieldChanges, at: number): AuditEvent {
    return {
      id: crypto.randomUUID(),
      keyId: record.id,
      owner: record.owner,
      action,
      actor: actorName(actor),
      at,
      changes,
      ...this.origin(),
    };
  }

  /** Where the call came from, for audit events (read lazily: only a write of an event reads it). */
  private origin(): Pick<AuditEvent, "ip" | "userAgent"> {
    const origin = this.deps.origin?.();
    return { ip: origin?.ip ?? null, userAgent: origin?.userAgent ?? null };
  }

  /** Authorizes a management call: `keys:write`, held before and after the actor is read again from D1 (actor.ts). */
  private async writer(caller: Actor): Promise<Actor> {
    requireScope(caller, "keys:write");
    const actor = await recheckActor(this.deps, this.verifier, caller);
    requireScope(actor, "keys:write");
    return actor;
  }

  private async findVisible(actor: Actor, id: string): Promise<KeyRecord> {
    if (!UUID_V4.test(id)) throw new NotFoundError();
    const record = await this.deps.store.findById(id);
    if (!record || !visibleOwners(actor).some((owner) => sameOwner(owner, record.owner))) {
      throw new NotFoundError();
    }
    return record;
  }
}
