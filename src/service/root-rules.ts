/**
 * The rules of root keys and of naming an owner, as pure functions (no storage, no clock but what is
 * passed in); test/rules/root-rules-unit.test.ts calls them directly.
 *
 * - Owner patterns: a root key covers the owners its patterns match: `user:*` (every person),
 *   `workspace:*` (every workspace), or one owner exactly (`workspace:acme`, `user:cust_42`).
 * - A root key may read (`keys:read`) and write (`keys:write`) only with that scope, is refused when
 *   revoked, expired or used from outside its allow-list, and acts only for an owner it covers, which
 *   every request names: `owner` + `owner_id` in create and import bodies, `owner_type` + `owner_id`
 *   on lists. A missing name is refused (422), never defaulted.
 * - Anyone else naming an owner (`owner_id`) may name only an owner it already acts for: a person
 *   themselves or their workspace, a key its own owner, a trusted Worker the owner it named. Naming
 *   another is refused (403), never quietly ignored.
 * - Only an operator (OPERATOR_ROLES) manages root keys, and the role gives nothing else.
 */
import type { Config } from "../config";
import { isWellFormedKey } from "../keys/format";
import { compileAllowList } from "../keys/ip";
import { patternCovers } from "../keys/owner-patterns";
import type { Actor, Owner, OwnerType, RootKeyRecord, RootScope } from "../model";
import { ForbiddenError, ValidationError } from "./errors";

export const ROOT_SCOPES: readonly RootScope[] = ["keys:read", "keys:write"];
/** What a root key covers when its maker narrows nothing. */
export const DEFAULT_OWNER_PATTERNS: readonly string[] = ["user:*", "workspace:*"];

/** Does a root key with `patterns` cover `owner`? */
export function ownerCovered(patterns: readonly string[], owner: Owner): boolean {
  return patterns.some((pattern) => patternCovers(pattern, owner));
}

/** A root key's scope check: `keys:read` and `keys:write` are separate (neither implies the other). */
export function requireRootScope(root: Pick<RootKeyRecord, "scopes">, scope: string): void {
  if (!(root.scopes as readonly string[]).includes(scope)) {
    throw new ForbiddenError("scopes", `This root key lacks the ${scope} scope`, "scope");
  }
}

/** A root key acts only for owners its patterns cover: 403 naming `field` otherwise. */
export function requireCovered(root: Pick<RootKeyRecord, "owners">, owner: Owner, field = "owner_id"): void {
  if (!ownerCovered(root.owners, owner)) {
    throw new ForbiddenError(
      field,
      `This root key does not cover ${owner.type}:${owner.id} (it covers ${root.owners.join(", ")})`,
    );
  }
}

/** Why a root key is refused now, or null when it is live: revoked, expired, or used from elsewhere. */
export function rootKeyRefusal(
  root: Pick<RootKeyRecord, "revokedAt" | "expiresAt" | "allowedIps">,
  now: number,
  ip: string | undefined,
): "revoked" | "expired" | "ip_not_allowed" | null {
  if (root.revokedAt !== null) return "revoked";
  if (root.expiresAt !== null && root.expiresAt <= now) return "expired";
  if (root.allowedIps !== null && !compileAllowList(root.allowedIps)(ip)) return "ip_not_allowed";
  return null;
}

/**
 * The verdict on a string that is no product key: a well-formed root key is NOT_FOUND (it is never a
 * product key, and saying MALFORMED would tell its holder what it is), anything else MALFORMED.
 * Reached only once a key failed every product shape, so keys that verify pay nothing for it.
 */
export function malformedOrRoot(key: string, config: Pick<Config, "rootKeyPrefix">): "MALFORMED" | "NOT_FOUND" {
  return config.rootKeyPrefix !== null && isWellFormedKey(key, config.rootKeyPrefix) ? "NOT_FOUND" : "MALFORMED";
}

/** Only an operator manages root keys. */
export function requireOperator(actor: Actor): asserts actor is Extract<Actor, { kind: "user" }> {
  if (actor.kind !== "user" || !actor.operator) {
    throw new ForbiddenError("role", "Only an operator (a role in OPERATOR_ROLES) may manage root keys", "operator");
  }
}

/** How a request names an owner: the type (`owner` or `owner_type`) and the id (`owner_id`). */
export interface OwnerName {
  readonly type?: OwnerType | undefined;
  readonly id?: string | undefined;
}

/**
 * The owner a root key names, which it must cover: both parts are required (422 naming each missing
 * field, never a default), and an owner outside its patterns is refused (403).
 */
export function rootNamedOwner(
  root: Pick<RootKeyRecord, "owners">,
  name: OwnerName,
  fields: { readonly type: string; readonly id: string },
): Owner {
  const missing: Record<string, string[]> = {};
  const required = "Required with a root key: it acts for the owner each request names";
  if (name.type === undefined) missing[fields.type] = [required];
  if (name.id === undefined) missing[fields.id] = [required];
  if (name.type === undefined || name.id === undefined) throw new ValidationError(missing);
  const owner: Owner = { type: name.type, id: name.id };
  requireCovered(root, owner, fields.id);
  return owner;
}

/**
 * Anyone but a root key naming an owner id: it must be one of the owners the caller acts for
 * (`actsFor`), else 403 naming `field`. Returns those of `actsFor` the name matches.
 */
export function requireOwnOwner(actsFor: readonly Owner[], name: OwnerName, field = "owner_id"): Owner[] {
  const matching = actsFor.filter((o) => (name.type === undefined || o.type === name.type) && o.id === name.id);
  if (name.id !== undefined && matching.length === 0) {
    throw new ForbiddenError(field, "Only a root key may act for another owner; this caller acts only for its own");
  }
  return matching;
}
