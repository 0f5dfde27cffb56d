/**
 * An audit event as a reader sees it. Where a change came from (`ip`, `user_agent`) is personal data
 * of whoever made it, so only those answerable for the key read it: the person who owns it (their
 * personal keys), a workspace admin (the workspace's keys), a trusted Worker over RPC (it acts as
 * the owner) and a root key (it acts for the owner, for the operator's backend). Everyone else who may read the log (a key with `keys:read`, a workspace member without
 * the admin role) reads `null` in both fields.
 */
import { type Actor, type AuditEvent, type Owner } from "../model";
import type { AuditEventView } from "../schemas";

/** Whether `actor` may read where the changes of `owner`'s keys came from. */
export function mayReadOrigin(actor: Actor, owner: Owner): boolean {
  switch (actor.kind) {
    case "service":
    case "root":
      return true;
    case "api_key":
      return false;
    case "user":
      if (owner.type === "user") return owner.id === actor.sub;
      return actor.workspaceAdmin && owner.id === actor.orgId;
  }
}

export function toEventView(e: AuditEvent, actor: Actor): AuditEventView {
  const origin = mayReadOrigin(actor, e.owner);
  return {
    id: e.id,
    key_id: e.keyId,
    action: e.action,
    actor: e.actor,
    at: new Date(e.at).toISOString(),
    changes: e.changes as AuditEventView["changes"],
    ip: origin ? e.ip : null,
    user_agent: origin ? e.userAgent : null,
  };
}
