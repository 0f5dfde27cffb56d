/**
 * The key lifecycle: create, list, get, update, rotate, revoke and verify, and the audit log, on
 * behalf of an Actor. Both the HTTP routes and the RPC entrypoint call this; it knows no HTTP and no SQL.
 *
 * Authorization: the rules are pure functions in rules.ts (attenuation, management, visibility, the
 * owner and powers of a new key, trusted import); the lifecycle reads the rows each write reaches and
 * applies them there (reach.ts). A write by a key that reaches more rows than the one it names (the keys sharing
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
 *
 * This file is the lifecycle's entry (create, update, rotate, revoke, list, get, credits); its parts
 * are modules of their own: access.ts (authorizing a call, finding a visible key), creation.ts,
 * import.ts, reach.ts, audit-changes.ts, audit-log.ts, balance.ts, usage-report.ts, idempotency.ts,
 * cursor.ts, retry.ts and views.ts.
 */
import { type KeyLimits, recordCreditsOp } from "../keys/limit-arithmetic";
import type { Actor, AuditAction, KeyRecord } from "../model";
import type {
  ApiKeyView,
  CreateKeyInput,
  ImportKeysInput,
  ImportResultView,
  CreatedApiKeyView,
  EventListView,
  CreditsInput,
  CreditsResultView,
  KeyListView,
  ListEventsInput,
  ListOwnerEventsInput,
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
import type { ReachGuard } from "../store/store";
import { authorizeWrite, findVisible } from "./access";
import { type FieldChanges, actorName, auditEvent, creationChanges, originOf, patchChanges } from "./audit-changes";
import { auditLog } from "./audit-log";
import { balance, liveView } from "./balance";
import { limitCreation, newKey, refusal } from "./creation";
import { decodeCursor, encodeCursor } from "./cursor";
import { ConflictError, NotFoundError } from "./errors";
import { claimConflict, idempotencyClaim } from "./idempotency";
import { importKeys } from "./import";
import { purgeAuditEvents } from "./operations";
import { chainGuard, lineageGuard, requireRotatedExpiry, requireWithinMinters } from "./reach";
import { rememberStored } from "./owner-limits";
import { retryOnConcurrentChange } from "./retry";
import {
  authorizeNewKey,
  chainOf,
  limitsForNewKey,
  requireManagement,
  requireManagementOfAll,
  requireNoLimitsOf,
  requireSameCounters,
  requireScope,
  requireWithin,
  listedOwners,
} from "./rules";
import { limitsLineageGuard } from "./limits-lineage";
import { type ReadViews, primaryViews } from "./read-views";
import { usageReport } from "./usage-report";
import { type ServiceDeps, Verifier } from "./verify";
import { iso, toApiKey, verdictView, whoamiView } from "./views";

/** The most KV copies one revoke deletes itself (a cascade may revoke thousands of keys). */
const MAX_KV_DELETES = 50;

export class Keys {
  readonly verifier: Verifier;

  /** `views`: where list, get, the audit log and usage read (read-views.ts); default: the store of record. */
  constructor(
    private readonly deps: ServiceDeps,
    private readonly views: ReadViews = primaryViews(deps),
  ) {
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
    await limitCreation(this.deps, owner);
    const { key, record } = await newKey(this.deps, actor, {
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
      throw claimConflict(error, claim);
    }
    if ("refused" in stored) throw refusal(stored.refused, maxKeysPerOwner);
    await rememberStored(this.deps, this.verifier, record, stored.seq);
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
    if (input.ratelimits !== undefined || input.credits !== undefined) {
      requireNoLimitsOf(actor, input.ratelimits !== undefined ? "ratelimits" : "credits");
    }
    return retryOnConcurrentChange(async () => {
      const current = await this.findForWrite(actor, id);
      requireManagement(actor, current, "The key to change");
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; a revoked key cannot be changed");

      const { changes, apply } = patchChanges(current, input, Date.now());
      if (Object.keys(changes).length === 0) return this.liveView(current);

      const next: KeyRecord = { ...current, ...apply };
      if (actor.kind === "api_key") requireWithin(actor.key, next, "The changed key");
      const store = this.deps.store;
      const guards = [
        ...(apply.limits === undefined ? [] : await chainGuard(store, actor, current)),
        ...(apply.limits === undefined ? [] : await limitsLineageGuard(store, current, apply.limits, Date.now())),
        ...(await lineageGuard(store, current, next)),
      ];
      await requireWithinMinters(store, current, next);
      if (apply.expiresAt !== undefined) await requireRotatedExpiry(store, current, next);

      const at = Date.now();
      const action: AuditAction = changes.enabled ? (next.enabled ? "enabled" : "disabled") : "updated";
      const event = this.event(actor, current, action, changes, at);
      const seq = await store.update(current, apply, event, guards);
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
      const current = await this.findForWrite(actor, id);
      requireManagement(actor, current, "The key to rotate");
      requireSameCounters(actor, current);
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; create a new key instead");
      const now = Date.now();
      if (current.expiresAt !== null && current.expiresAt <= now) {
        throw new ConflictError("The key has expired; create a new key instead");
      }
      if (!limited) await limitCreation(this.deps, current.owner);
      limited = true;

      const oldExpiresAt = Math.min(current.expiresAt ?? Infinity, now + input.grace_seconds * 1000);
      // The replacement stays in the old key's lineage (parent_id), so a cascading revocation still
      // reaches it, and joins the lineage of the key asking (created_by), which receives its secret.
      // It also shares the old key's usage counters (usage_id) and limits: one balance for both, never two.
      const { key, record } = await newKey(this.deps, actor, {
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
      await rememberStored(this.deps, this.verifier, record, stored.seq);
      // It shares the old key's balance: shown as it is now.
      return { ...(await this.liveView(record)), key };
    });
  }

  /** Registers existing keys by hash, all or nothing (service/import.ts). */
  import(caller: Actor, input: ImportKeysInput): Promise<ImportResultView> {
    return importKeys(this.deps, this.verifier, caller, input);
  }

  async list(actor: Actor, input: ListKeysInput): Promise<KeyListView> {
    requireScope(actor, "keys:read");
    const cursor = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await this.views.keys.list({
      owners: listedOwners(actor, { type: input.owner_type, id: input.owner_id }),
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
    return this.liveView(await findVisible(this.views.keys, actor, id));
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
      const current = await this.findForWrite(actor, id);
      requireManagement(actor, current, "The key");
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; its credits cannot be changed");
      const rule = current.limits?.credits;
      if (!current.limits || !rule) {
        throw new ConflictError("The key has no credits: give it credits with PATCH /v1/keys/{id} first");
      }
      const guards = await chainGuard(this.deps.store, actor, current);
      const at = Date.now();
      const limits: KeyLimits = { ...current.limits, credits: recordCreditsOp(rule, input.op, input.amount, at) };
      const changes = { credits: { old: null, new: { op: input.op, amount: input.amount } } };
      const event = this.event(actor, current, "updated", changes, at);
      const seq = await this.deps.store.update(current, { limits }, event, guards);
      if (seq === null) return null;
      const updated = { ...current, limits, updatedAt: at };
      await this.verifier.changed(updated, seq);
      await this.verifier.catchUp();
      return { remaining: await balance(this.deps, updated) };
    });
  }

  /** A key's verifications per hour or day (UTC) by outcome (service/usage-report.ts). */
  usage(actor: Actor, id: string, query: UsageQueryInput): Promise<UsageReportView> {
    return usageReport(this.views, actor, id, query);
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
      const record = await this.findForWrite(actor, id);
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
      const origin = { actor: actorName(actor), ...originOf(this.deps) };
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
    const record = await findVisible(this.views.keys, actor, id);
    return auditLog(this.views.keys, actor, [record.owner], record.id, input);
  }

  /** The audit events of every owner whose keys the actor sees, newest first. */
  async listEvents(actor: Actor, input: ListOwnerEventsInput): Promise<EventListView> {
    requireScope(actor, "keys:read");
    const owners = listedOwners(actor, { type: input.owner_type, id: input.owner_id });
    return auditLog(this.views.keys, actor, owners, null, input);
  }

  /** Retention (a scheduled task): deletes events older than the configured days, in bounded batches. */
  purgeAuditEvents(now: number = Date.now()): Promise<number> {
    return purgeAuditEvents(this.deps.store, this.deps.config.auditRetentionDays, now);
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
    return whoamiView(actor);
  }

  /** Authorizes a management call (service/access.ts). */
  private writer(caller: Actor): Promise<Actor> {
    return authorizeWrite(this.deps, this.verifier, caller);
  }

  /** The key a write decides on: read from the store of record (the primary), never from a view. */
  private findForWrite(actor: Actor, id: string): Promise<KeyRecord> {
    return findVisible(this.deps.store, actor, id);
  }

  private liveView(record: KeyRecord): Promise<ApiKeyView> {
    return liveView(this.deps, record);
  }

  private event(actor: Actor, record: KeyRecord, action: AuditAction, changes: FieldChanges, at: number) {
    return auditEvent(this.deps, actor, record, action, changes, at);
  }
}
