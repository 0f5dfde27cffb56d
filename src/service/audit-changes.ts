/** What an audit event records: who acted and from where, and the changes (a new key's settings, a PATCH's diff). */
import { type KeyLimits, hasLimits, recordCreditsOp } from "../keys/limit-arithmetic";
import type { Actor, AuditAction, AuditEvent, KeyRecord } from "../model";
import type { UpdateKeyInput } from "../schemas";
import type { KeyChanges } from "../store/store";
import { iso, limitsView } from "./views";
import type { ServiceDeps } from "./verify";

export type FieldChanges = Record<string, { old: unknown; new: unknown }>;

/** How an actor is named in `created_by` and in audit events. */
export function actorName(actor: Actor): string {
  return actor.kind === "user" ? `user:${actor.sub}` : actor.kind === "api_key" ? `key:${actor.key.id}` : "service";
}

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
export function creationChanges(r: KeyRecord): FieldChanges {
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

/** A PATCH's input as record fields (undefined: left as it is). */
export function patchOf(input: UpdateKeyInput): KeyChanges {
  return {
    name: input.name,
    metadata: input.metadata,
    enabled: input.enabled,
    expiresAt:
      input.expires_at === undefined || input.expires_at === null ? input.expires_at : Date.parse(input.expires_at),
    scopes: input.scopes,
    resources: input.resources,
    allowedIps: input.allowed_ips,
  };
}

/**
 * What a PATCH changes in `current`: the event's changes (API fields, old and new) and the record
 * fields to write. A field given with the value it has is no change; credits given are always one.
 */
export function patchChanges(
  current: KeyRecord,
  input: UpdateKeyInput,
  at: number,
): { changes: FieldChanges; apply: KeyChanges } {
  const patch = patchOf(input);
  const changes: FieldChanges = {};
  const apply: Record<string, unknown> = {};
  const limits = patchedLimits(current.limits, input, at);
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
  return { changes, apply: apply as KeyChanges };
}

/** Where the call came from, for audit events (read lazily: only a write of an event reads it). */
export function originOf(deps: ServiceDeps): Pick<AuditEvent, "ip" | "userAgent"> {
  const origin = deps.origin?.();
  return { ip: origin?.ip ?? null, userAgent: origin?.userAgent ?? null };
}

/**
 * An audit event of `actor` changing `record`, from where the call came. Imports write one
 * `imported` event per key through this, with `creationChanges(record)`, in the same store batch.
 */
export function auditEvent(
  deps: ServiceDeps,
  actor: Actor,
  record: KeyRecord,
  action: AuditAction,
  changes: FieldChanges,
  at: number,
): AuditEvent {
  return {
    id: crypto.randomUUID(),
    keyId: record.id,
    owner: record.owner,
    action,
    actor: actorName(actor),
    at,
    changes,
    ...originOf(deps),
  };
}
