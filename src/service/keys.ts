/**
 * The key lifecycle: create, list, get, update, rotate, revoke and verify, and the audit log, on
 * behalf of an Actor. Both the HTTP routes and the RPC entrypoint call this; it knows no HTTP and no SQL.
 *
 * Authorization lives here: a person manages their own keys and their workspace's; a key manages
 * its owner's keys only with `keys:read` / `keys:write`, and can never give any key, itself included,
 * a power it does not hold (attenuation, `assertWithin`: scopes it covers, a subset of its resources,
 * an expiry no later than its own, addresses within its own allow-list), whether creating, updating
 * or rotating.
 *
 * Every change writes one audit event per key it changes, in the same store write as the change.
 */
import { generateKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { rangesWithin } from "../keys/ip";
import { firstUncovered, grants, resourcesWithin } from "../keys/scopes";
import { type Actor, type AuditAction, type AuditEvent, type KeyRecord, type Owner, sameOwner } from "../model";
import type {
  ApiKeyView,
  AuditEventView,
  CreateKeyInput,
  CreatedApiKeyView,
  EventListView,
  KeyListView,
  ListEventsInput,
  ListKeysInput,
  RotateKeyInput,
  UpdateKeyInput,
  VerifyChecks,
  VerifyResultView,
  WhoAmIView,
} from "../schemas";
import type { KeyChanges } from "../store/store";
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from "./errors";
import { type ServiceDeps, Verifier } from "./verify";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

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
    enabled: r.enabled,
    updated_at: new Date(r.updatedAt ?? r.createdAt).toISOString(),
    allowed_ips: r.allowedIps === null ? null : [...r.allowedIps],
    rotated_from: r.rotatedFrom,
  };
}

function toEventView(e: AuditEvent): AuditEventView {
  return {
    id: e.id,
    key_id: e.keyId,
    action: e.action,
    actor: e.actor,
    at: new Date(e.at).toISOString(),
    changes: e.changes as AuditEventView["changes"],
    ip: e.ip,
    user_agent: e.userAgent,
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

/** The powers attenuation compares: what a key may do, on what, until when, and from where. */
type Powers = Pick<KeyRecord, "scopes" | "resources" | "expiresAt" | "allowedIps">;

/**
 * Attenuation, for every way a key can shape a key (create, update, rotate): `powers` must be within
 * those of `holder`, the key making the request. Throws naming the first power beyond it.
 */
function assertWithin(holder: KeyRecord, powers: Powers): void {
  const uncovered = firstUncovered(holder.scopes, powers.scopes);
  if (uncovered !== undefined) {
    throw new ForbiddenError(
      "scopes",
      `Scope "${uncovered}" is not covered by the scopes of the key making this request`,
    );
  }
  if (!resourcesWithin(holder.resources, powers.resources)) {
    throw new ForbiddenError(
      "resources",
      "The key's resources must be a subset of the resources of the key making this request",
    );
  }
  if (holder.expiresAt !== null && (powers.expiresAt === null || powers.expiresAt > holder.expiresAt)) {
    throw new ForbiddenError(
      "expires_at",
      `The key must expire no later than the key making this request (${iso(holder.expiresAt)})`,
    );
  }
  if (!rangesWithin(holder.allowedIps, powers.allowedIps)) {
    throw new ForbiddenError(
      "allowed_ips",
      "The key's allowed_ips must lie within the allowed_ips of the key making this request",
    );
  }
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
  return changes;
}

/** How many times an update or rotation re-reads a key that changed under it before answering 409. */
const CONCURRENT_ATTEMPTS = 3;
/** Retention purges delete this many events per statement, at most PURGE_BATCHES statements per run. */
const PURGE_BATCH = 1000;
const PURGE_BATCHES = 50;
const DAY_MS = 86_400_000;

export class Keys {
  readonly verifier: Verifier;

  constructor(private readonly deps: ServiceDeps) {
    this.verifier = new Verifier(deps);
  }

  async create(actor: Actor, input: CreateKeyInput): Promise<CreatedApiKeyView> {
    this.requireScope(actor, "keys:write");
    const owner = this.ownerForNewKey(actor, input.owner);
    const parent = actor.kind === "api_key" ? actor.key : null;

    const powers: Powers = {
      scopes: input.scopes ?? (parent ? [...parent.scopes] : ["*"]),
      resources: input.resources !== undefined ? input.resources : (parent?.resources ?? null),
      expiresAt:
        input.expires_at !== undefined
          ? input.expires_at === null
            ? null
            : Date.parse(input.expires_at)
          : (parent?.expiresAt ?? null),
      allowedIps: input.allowed_ips !== undefined ? input.allowed_ips : (parent?.allowedIps ?? null),
    };
    if (parent) assertWithin(parent, powers);

    const { key, record } = await this.newKey(actor, {
      name: input.name,
      owner,
      metadata: input.metadata ?? null,
      rotatedFrom: null,
      ...powers,
    });
    await this.deps.store.insert(
      record,
      this.event(actor, record, "created", creationChanges(record), record.createdAt),
    );
    this.verifier.remember(record);
    return { ...toApiKey(record), key };
  }

  /**
   * Changes a key's settings; fields left out are unchanged. A patch that changes nothing writes
   * nothing and returns the key as it is. A key making the request is bound by attenuation: the key
   * it leaves behind must be within its own powers.
   */
  async update(actor: Actor, id: string, input: UpdateKeyInput): Promise<ApiKeyView> {
    this.requireScope(actor, "keys:write");
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
    for (let attempt = 1; ; attempt++) {
      const current = await this.findVisible(actor, id);
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; a revoked key cannot be changed");

      const changes: FieldChanges = {};
      const apply: Record<string, unknown> = {};
      for (const [field, recordField, toApi] of UPDATABLE_FIELDS) {
        const value = patch[recordField];
        if (value === undefined) continue;
        const before = (toApi as (v: unknown) => unknown)(current[recordField]);
        const after = (toApi as (v: unknown) => unknown)(value);
        if (JSON.stringify(before) === JSON.stringify(after)) continue;
        changes[field] = { old: before, new: after };
        apply[recordField] = value;
      }
      if (Object.keys(changes).length === 0) return toApiKey(current);

      const next: KeyRecord = { ...current, ...(apply as KeyChanges) };
      if (actor.kind === "api_key") assertWithin(actor.key, next);

      const at = Date.now();
      const action: AuditAction = changes.enabled ? (next.enabled ? "enabled" : "disabled") : "updated";
      if (await this.deps.store.update(current, apply as KeyChanges, this.event(actor, current, action, changes, at))) {
        const updated = { ...next, updatedAt: at };
        await this.verifier.changed(updated);
        return toApiKey(updated);
      }
      if (attempt === CONCURRENT_ATTEMPTS)
        throw new ConflictError("The key is being changed by another request; retry");
    }
  }

  /**
   * Replaces the key with a new one (returned once) that copies its name, owner, scopes, resources,
   * metadata, expiry and allow-list; the old key then expires at the earlier of its own expiry and now
   * + grace_seconds. Revoked and expired keys cannot be rotated (409).
   */
  async rotate(actor: Actor, id: string, input: RotateKeyInput): Promise<CreatedApiKeyView> {
    this.requireScope(actor, "keys:write");
    for (let attempt = 1; ; attempt++) {
      const current = await this.findVisible(actor, id);
      if (current.revokedAt !== null) throw new ConflictError("The key is revoked; create a new key instead");
      const now = Date.now();
      if (current.expiresAt !== null && current.expiresAt <= now) {
        throw new ConflictError("The key has expired; create a new key instead");
      }
      if (actor.kind === "api_key") assertWithin(actor.key, current);

      const oldExpiresAt = Math.min(current.expiresAt ?? Infinity, now + input.grace_seconds * 1000);
      const { key, record } = await this.newKey(actor, { ...current, rotatedFrom: current.id });
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
      if (await this.deps.store.rotate(current, oldExpiresAt, record, [rotated, created])) {
        await this.verifier.changed({ ...current, expiresAt: oldExpiresAt, updatedAt: now });
        this.verifier.remember(record);
        return { ...toApiKey(record), key };
      }
      if (attempt === CONCURRENT_ATTEMPTS)
        throw new ConflictError("The key is being changed by another request; retry");
    }
  }

  async list(actor: Actor, input: ListKeysInput): Promise<KeyListView> {
    this.requireScope(actor, "keys:read");
    const cursor = input.cursor === undefined ? null : decodeCursor(input.cursor);
    const rows = await this.deps.store.list({
      owners: this.visibleOwners(actor),
      limit: input.limit + 1,
      includeRevoked: input.include_revoked,
      after: cursor && { createdAt: cursor.time, id: cursor.id },
    });
    const page = rows.slice(0, input.limit);
    const last = page[page.length - 1];
    return {
      data: page.map(toApiKey),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last.createdAt, last.id) : null,
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
    const at = Date.now();
    // Already revoked (elsewhere, or by a call whose answer was lost): still evict it here.
    const revoked =
      record.revokedAt !== null
        ? record
        : await this.deps.store.revoke(
            record,
            at,
            this.event(actor, record, "revoked", { revoked_at: { old: null, new: iso(at) } }, at),
          );
    if (!revoked) throw new NotFoundError();
    await this.verifier.forget(revoked);
  }

  /** One key's audit events, newest first (the key may be revoked). */
  async keyEvents(actor: Actor, id: string, input: ListEventsInput): Promise<EventListView> {
    this.requireScope(actor, "keys:read");
    const record = await this.findVisible(actor, id);
    return this.events([record.owner], record.id, input);
  }

  /** The audit events of every owner whose keys the actor sees, newest first. */
  async listEvents(actor: Actor, input: ListEventsInput): Promise<EventListView> {
    this.requireScope(actor, "keys:read");
    return this.events(this.visibleOwners(actor), null, input);
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
      enabled: record ? record.enabled : null,
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
          enabled: actor.key.enabled,
        };
      case "service":
        throw new ForbiddenError("principal", "whoami is for people and keys");
    }
  }

  private async events(owners: Owner[], keyId: string | null, input: ListEventsInput): Promise<EventListView> {
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
      data: page.map(toEventView),
      next_cursor: rows.length > input.limit && last ? encodeCursor(last.at, last.id) : null,
    };
  }

  /** A fresh key and its record, made by `actor` now (not yet stored). */
  private async newKey(
    actor: Actor,
    settings: Pick<KeyRecord, "name" | "owner" | "metadata" | "rotatedFrom"> & Powers,
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
    };
    return { key, record };
  }

  /**
   * An audit event of `actor` changing `record`, from where the call came. Imports write one
   * `imported` event per key through this, with `creationChanges(record)`, in the same store batch.
   */
  private event(actor: Actor, record: KeyRecord, action: AuditAction, changes: FieldChanges, at: number): AuditEvent {
    const origin = this.deps.origin?.();
    return {
      id: crypto.randomUUID(),
      keyId: record.id,
      owner: record.owner,
      action,
      actor: actorName(actor),
      at,
      changes,
      ip: origin?.ip ?? null,
      userAgent: origin?.userAgent ?? null,
    };
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
