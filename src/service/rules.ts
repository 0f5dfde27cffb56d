/**
 * The permission rules, as pure functions of an actor and records (no storage, no clock but what is
 * passed in): attenuation (is one key's power within another's), management (may an actor change a
 * key), chain-wide management (every row a write reaches), visibility, the owner and the powers and
 * limits of a new key, who may import, and what a rotated-away key's expiry may become. The service
 * (keys.ts, reach.ts, import.ts) reads the rows and calls these; test/rules/rules-unit.test.ts calls them directly.
 *
 * A person manages their own keys, reads their workspace's, and creates, changes, rotates and revokes
 * those only as a workspace admin. A key manages its owner's keys only with `keys:read` / `keys:write`,
 * may manage only keys no more powerful than itself, and can never give any key a power it does not
 * hold. A trusted service (RPC) manages any key of the owner it names; a root key any key of an owner
 * its patterns cover (root-rules.ts), named in each request.
 */
import type { ImportPolicy } from "../config";
import { rangesWithin } from "../keys/ip";
import { firstUncovered, grants, resourcesWithin } from "../keys/scopes";
import { type KeyLimits, hasLimits } from "../keys/limit-arithmetic";
import { type Actor, type KeyRecord, type Owner, sameOwner } from "../model";
import { ForbiddenError, ValidationError } from "./errors";
import { type OwnerName, requireOwnOwner, requireRootScope, ownerCovered, rootNamedOwner } from "./root-rules";

/** The powers attenuation compares: what a key may do, on what, until when, and from where. */
export type Powers = Pick<KeyRecord, "scopes" | "resources" | "expiresAt" | "allowedIps">;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The first power of `key` that `holder` does not cover, as its API field, or null when `key` is within `holder`. */
export function exceededPower(
  holder: Powers,
  key: Powers,
): "scopes" | "resources" | "expires_at" | "allowed_ips" | null {
  if (firstUncovered(holder.scopes, key.scopes) !== undefined) return "scopes";
  if (!resourcesWithin(holder.resources, key.resources)) return "resources";
  if (holder.expiresAt !== null && (key.expiresAt === null || key.expiresAt > holder.expiresAt)) return "expires_at";
  if (!rangesWithin(holder.allowedIps, key.allowedIps)) return "allowed_ips";
  return null;
}

/**
 * Attenuation, for every way a key can shape or manage a key (create, import, update, rotate,
 * revoke): `key` (`what`, for messages) must be no more powerful than `holder`, the key making the
 * request: scopes it covers, resources within its own, an expiry no later than its own, addresses
 * within its own allow-list. Throws a ForbiddenError naming the first power exceeded.
 */
export function requireWithin(holder: Powers, key: Powers, what: string): void {
  switch (exceededPower(holder, key)) {
    case null:
      return;
    case "scopes":
      throw new ForbiddenError(
        "scopes",
        `Scope "${firstUncovered(holder.scopes, key.scopes)}" is not covered by the scopes of the key making this request`,
      );
    case "resources":
      throw new ForbiddenError(
        "resources",
        `${what}'s resources must be a subset of the resources of the key making this request`,
      );
    case "expires_at":
      throw new ForbiddenError(
        "expires_at",
        `${what} must expire no later than the key making this request (${iso(holder.expiresAt)})`,
      );
    case "allowed_ips":
      throw new ForbiddenError(
        "allowed_ips",
        `${what}'s allowed_ips must lie within the allowed_ips of the key making this request`,
      );
  }
}

export function requireScope(actor: Actor, scope: string): void {
  if (actor.kind === "root") requireRootScope(actor.root, scope);
  if (actor.kind === "api_key" && !grants(actor.key.scopes, scope)) {
    throw new ForbiddenError("scopes", `This key lacks the ${scope} scope`, "scope");
  }
}

/** Only a workspace admin (WORKSPACE_ADMIN_ROLES) creates, changes or revokes workspace keys. */
export function requireWorkspaceAdmin(actor: Extract<Actor, { kind: "user" }>): void {
  if (!actor.workspaceAdmin) {
    throw new ForbiddenError("role", "Only a workspace admin may create, change or revoke workspace keys", "role");
  }
}

/**
 * May the actor change or revoke `record` (which it can see)? A person: their own keys, and their
 * workspace's if they are a workspace admin. A key: keys no more powerful than itself. A trusted
 * service: any key of its owner.
 */
export function requireManagement(actor: Actor, record: KeyRecord, what: string): void {
  if (actor.kind === "user" && record.owner.type === "workspace") requireWorkspaceAdmin(actor);
  if (actor.kind === "api_key") requireWithin(actor.key, record, what);
}

/**
 * Chain-wide management: a write by a key that reaches more rows than the one it names (the keys
 * sharing usage counters, a cascade's lineage) is allowed only if the key may manage every one of
 * them. Throws a ForbiddenError naming the ids out of reach (`what`: how the rows are reached).
 */
export function requireManagementOfAll(actor: Actor, records: readonly KeyRecord[], what: string): void {
  if (actor.kind !== "api_key") return;
  const beyond = records.filter((r) => exceededPower(actor.key, r) !== null).map((r) => r.id);
  if (beyond.length > 0) {
    throw new ForbiddenError(
      "key_ids",
      `${what} ${beyond.join(", ")}, more powerful than the key making this request; it may not change them`,
    );
  }
}

/** The ids of `records` more powerful than `powers`: the lineage a narrowing would leave stronger than its root. */
export function strongerThan(powers: Powers, records: readonly KeyRecord[]): string[] {
  return records.filter((r) => exceededPower(powers, r) !== null).map((r) => r.id);
}

/**
 * Is `key` looser in usage than `minter`: the minter has usage limits and the key does not spend its
 * counters (a key made by a key with limits always does, limitsForNewKey)? Then it is stronger than
 * the minter, however narrow its powers.
 */
export function usageOutgrows(
  minter: Pick<KeyRecord, "id" | "usageId" | "limits">,
  key: Pick<KeyRecord, "id" | "usageId">,
): boolean {
  return hasLimits(minter.limits) && chainOf(key) !== chainOf(minter);
}

/**
 * Limits reach the lineage: the keys minted by a key with usage limits share its counters, so a change
 * that gives the chain `chain` limits it did not have is refused while a key of the chain has minted
 * keys that spend no limits or other counters. Their ids among `lineage` (the unrevoked lineage of the
 * chain's keys), but for those expired at `now` (a PATCH extending one meets usageOutgrows).
 */
export function outsideChain(chain: string, lineage: readonly KeyRecord[], now: number): string[] {
  return lineage.filter((r) => chainOf(r) !== chain && (r.expiresAt === null || r.expiresAt > now)).map((r) => r.id);
}

/**
 * A key with usage limits may not set any key's limits or credits: the keys it could reach include
 * those sharing its own counters (its children, its rotations), so it could lift its own limits.
 */
export function requireNoLimitsOf(actor: Actor, field: "ratelimits" | "credits"): void {
  if (actor.kind === "api_key" && hasLimits(actor.key.limits)) {
    throw new ForbiddenError(field, "A key with usage limits may not change any key's rate limits or credits");
  }
}

/** The key chain whose counters a key uses: its own id unless it inherited another's (rotation). */
export const chainOf = (record: Pick<KeyRecord, "id" | "usageId">): string => record.usageId ?? record.id;

/**
 * A key with usage limits may rotate only keys sharing its counters: a rotation hands out a new key
 * with the rotated key's limits, so rotating a key without them (or with other ones) would be a way
 * around its own.
 */
export function requireSameCounters(actor: Actor, record: KeyRecord): void {
  if (actor.kind === "api_key" && hasLimits(actor.key.limits) && chainOf(record) !== chainOf(actor.key)) {
    throw new ForbiddenError(
      "ratelimits",
      "A key with usage limits may rotate only itself and the keys sharing its usage counters",
    );
  }
}

/**
 * Whose keys the actor may see and manage. A root key names the owner in each request instead
 * (`listedOwners`, `maySee`): listed here, it sees no one.
 */
export function visibleOwners(actor: Actor): Owner[] {
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
    case "root":
      return [];
  }
}

/** May the actor see (and, by the other rules, manage) a key of `owner`? A root key: any owner it covers. */
export function maySee(actor: Actor, owner: Owner): boolean {
  if (actor.kind === "root") return ownerCovered(actor.root.owners, owner);
  return visibleOwners(actor).some((o) => sameOwner(o, owner));
}

/**
 * The owners a list of keys or events reads, as the request names them (`owner_type`, `owner_id`): a
 * root key must name one owner it covers; anyone else reads the owners they act for, narrowed to the
 * one named (naming another owner id is refused).
 */
export function listedOwners(actor: Actor, name: OwnerName): Owner[] {
  if (actor.kind === "root") return [rootNamedOwner(actor.root, name, { type: "owner_type", id: "owner_id" })];
  return name.id === undefined ? visibleOwners(actor) : requireOwnOwner(visibleOwners(actor), name);
}

/**
 * The owner of a new key: a root key's is the one the input names (`owner` and `owner_id`, both
 * required); anyone else's is their own (a person's workspace with `owner: workspace`), and an
 * `owner_id` naming another owner is refused.
 */
export function ownerForNewKey(
  actor: Actor,
  requested: "user" | "workspace" | undefined,
  ownerId?: string | undefined,
): Owner {
  if (actor.kind === "root") return rootNamedOwner(actor.root, { type: requested, id: ownerId }, OWNER_FIELDS);
  // Naming another owner is refused before anything else is judged of the request.
  if (ownerId !== undefined) {
    requireOwnOwner(visibleOwners(actor), {
      type: requested ?? (actor.kind === "user" ? "user" : undefined),
      id: ownerId,
    });
  }
  const owner = ownOwnerForNewKey(actor, requested);
  requireOwnOwner([owner], { id: ownerId });
  return owner;
}

const OWNER_FIELDS = { type: "owner", id: "owner_id" } as const;

function ownOwnerForNewKey(
  actor: Exclude<Actor, { kind: "root" }>,
  requested: "user" | "workspace" | undefined,
): Owner {
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
        throw new ForbiddenError("owner", `A ${actor.key.owner.type} key can only create ${actor.key.owner.type} keys`);
      }
      return actor.key.owner;
    case "service":
      if (requested !== undefined && requested !== actor.owner.type) {
        throw new ValidationError({ owner: [`Must be "${actor.owner.type}" or absent for this owner`] });
      }
      return actor.owner;
  }
}

/** What a new key asks for, as create and import bodies say it. */
export interface NewKeyInput {
  readonly owner?: "user" | "workspace" | undefined;
  readonly owner_id?: string | undefined;
  readonly scopes?: string[] | undefined;
  readonly resources?: string[] | null | undefined;
  readonly expires_at?: string | null | undefined;
  readonly allowed_ips?: string[] | null | undefined;
}

/**
 * Who owns a new key and what it may do, for this actor: a key may only make keys weaker than
 * itself (scopes it covers, resources within its own, an expiry no later than its own, addresses
 * within its allow-list), and by default a child inherits all four.
 */
export function authorizeNewKey(actor: Actor, input: NewKeyInput): Pick<KeyRecord, "owner"> & Powers {
  const owner = ownerForNewKey(actor, input.owner, input.owner_id);
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
  if (parent) requireWithin(parent, powers, "The new key");
  return { owner, ...powers };
}

/**
 * The limits of a new key: those asked for, or, for a key made by a key with limits, that key's
 * limits and counters (it may not ask for others: a child is never a way around its parent's).
 */
export function limitsForNewKey(
  actor: Actor,
  input: { readonly ratelimits?: KeyLimits["ratelimits"] | undefined; readonly credits?: KeyLimits["credits"] },
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
    return { limits: parent.limits, usageId: chainOf(parent) };
  }
  const limits: KeyLimits = { ratelimits: input.ratelimits ?? [], credits: input.credits ?? null };
  return hasLimits(limits) ? { limits } : {};
}

/**
 * Trusted import: may this actor import a key for `owner`? Import is a migration tool: a trusted
 * service (RPC) and a workspace admin for their workspace may; a person for their own keys and a key
 * only when the operator allows it (IMPORT_ALLOWED=personal). (The workspace admin role itself is
 * checked by ownerForNewKey.)
 */
export function mayImport(actor: Actor, owner: Owner, policy: ImportPolicy): boolean {
  switch (actor.kind) {
    case "service":
    case "root":
      return true;
    case "user":
      return (owner.type === "workspace" && actor.workspaceAdmin) || policy === "personal";
    case "api_key":
      return policy === "personal";
  }
}

/**
 * A key that has been rotated (it has a replacement) may have its expiry shortened, never extended
 * or cleared: its grace period is what its holder was given. True when `next` is allowed.
 */
export function rotatedExpiryAllowed(current: number | null, next: number | null): boolean {
  return current === null ? next !== null : next !== null && next <= current;
}
