/**
 * Management re-checks the caller. A key authenticates from the caches (the hot path), which may be
 * up to the revocation bound behind D1; creating, changing or revoking keys are not the hot path, so
 * before any of them a key actor is read again from D1 and refused if it is no longer live (revoked,
 * expired, gone, or disabled) or no longer allowed from the address it authenticated from. Every
 * management operation on behalf of a key calls `recheckActor` first and acts with the fresh record
 * (its current scopes, resources and expiry).
 *
 * This closes the window up to the moment of the check; the conditional insert (store.insert) closes
 * it up to the moment of the write, so a create cannot land after its parent's revocation.
 */
import type { Actor } from "../model";
import { CredentialNotLiveError } from "./errors";
import { ipAllowed } from "../keys/ip";
import type { ServiceDeps, Verifier } from "./verify";

export async function recheckActor(deps: ServiceDeps, verifier: Verifier, actor: Actor): Promise<Actor> {
  if (actor.kind !== "api_key") return actor;
  const current = await deps.store.findById(actor.key.id);
  if (current === null || current.hash !== actor.key.hash) throw new CredentialNotLiveError();
  if (current.revokedAt !== null) {
    await verifier.forget(current); // this isolate stops accepting it at once
    throw new CredentialNotLiveError();
  }
  if (current.expiresAt !== null && current.expiresAt <= Date.now()) throw new CredentialNotLiveError();
  // Disabled is not live either (though it may be enabled again, so it is not forgotten like a revocation).
  if (!current.enabled) throw new CredentialNotLiveError();
  // An allow-list narrowed elsewhere holds for management at once, like a revocation.
  if (current.allowedIps !== null && !ipAllowed(current.allowedIps, actor.ip)) {
    throw new CredentialNotLiveError("The API key making this request may not be used from this address");
  }
  return { kind: "api_key", key: current, ip: actor.ip };
}
