/** A record as the API shows it: a key's view (never its hash), a verdict, and who is calling. */
import { type KeyLimits, usageFields } from "../keys/limit-arithmetic";
import type { Actor, KeyRecord } from "../model";
import type { ApiKeyView, DeadKeyCode, LiveKeyCode, VerifyResultView, WhoAmIView } from "../schemas";
import { ForbiddenError } from "./errors";
import type { Verification } from "./verify";

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A key's usage limits as the API shows them (credits: the rule; views with a live balance override it). */
export function limitsView(limits: KeyLimits | null | undefined): Pick<ApiKeyView, "ratelimits" | "credits"> {
  const credits = limits?.credits ?? null;
  return {
    ratelimits: (limits?.ratelimits ?? []).map(({ name, limit, duration_ms }) => ({ name, limit, duration_ms })),
    credits: credits ? { remaining: credits.remaining, refill: credits.refill ? { ...credits.refill } : null } : null,
  };
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
export function verdictView({ code, record, keyId, usage }: Verification): VerifyResultView {
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

/** Who is calling, as GET /v1/whoami shows it (people and keys only). */
export function whoamiView(actor: Actor): WhoAmIView {
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
