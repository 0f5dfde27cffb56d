/**
 * Who may read and change an owner's per-customer limits (GET / PUT /v1/owners/{type}/{id}/limits,
 * its credits, usage and audit log): pure functions of the actor and the owner named, unit-tested by
 * test/features/owner-limits.test.ts and applied by service/owner-limits.ts on every path (HTTP and RPC).
 *
 * Limits are the plan a customer pays for, so the customer's own credentials may not set them:
 * - a trusted Worker over RPC (`service`) acts for the owner it names: that owner's limits;
 * - a person who is an admin (WORKSPACE_ADMIN_ROLES) of a workspace: that workspace's limits;
 * - nobody else: not a person for their personal keys' owner, not a workspace member without the admin
 *   role, not a customer's API key (whatever its scopes), not a person for another workspace (403).
 * - a root key, for the owners its patterns cover: reads with `keys:read`, changes with `keys:write`.
 * A new kind of actor is refused until it is given a case here.
 */
import type { Actor, Owner } from "../model";
import { ForbiddenError } from "./errors";
import { requireCovered, requireRootScope } from "./root-rules";

/**
 * Throws ForbiddenError (403) unless `actor` may read (GET limits, usage, events) or change (PUT,
 * credits) `owner`'s limits. `access` is for credentials with read-only and read-write powers (a root
 * key's `keys:read` / `keys:write`); the other actors may do both or neither.
 */
export function requireOwnerLimitsAccess(actor: Actor, owner: Owner, access: "read" | "write"): void {
  switch (actor.kind) {
    case "root":
      requireRootScope(actor.root, access === "write" ? "keys:write" : "keys:read");
      requireCovered(actor.root, owner);
      return;
    case "service":
      if (actor.owner.type === owner.type && actor.owner.id === owner.id) return;
      throw new ForbiddenError("owner", "A trusted Worker acts only for the owner it names");
    case "user":
      if (owner.type !== "workspace" || owner.id !== actor.orgId) {
        throw new ForbiddenError("owner", "A person may manage per-customer limits only of their own workspace");
      }
      if (!actor.workspaceAdmin) {
        throw new ForbiddenError("role", "Only a workspace admin may manage the workspace's limits", "role");
      }
      return;
    case "api_key":
      throw new ForbiddenError("owner", "An API key may not read or change its owner's per-customer limits");
    default:
      throw new ForbiddenError("owner", "This credential may not manage per-customer limits");
  }
}
