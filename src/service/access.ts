/** What every lifecycle call starts with: authorizing a management call, and finding a key the actor may see. */
import { UUID_V4 } from "../keys/key-id";
import type { Actor, KeyRecord } from "../model";
import type { KeyStore } from "../store/store";
import { recheckActor } from "./actor";
import { NotFoundError } from "./errors";
import { maySee, requireScope } from "./rules";
import type { ServiceDeps, Verifier } from "./verify";

/** Authorizes a management call: `keys:write`, held before and after the actor is read again from D1 (actor.ts). */
export async function authorizeWrite(deps: ServiceDeps, verifier: Verifier, caller: Actor): Promise<Actor> {
  requireScope(caller, "keys:write");
  const actor = await recheckActor(deps, verifier, caller);
  requireScope(actor, "keys:write");
  return actor;
}

/** The key `id` when one of its owners is the actor's to see; else 404, the same for an unknown, malformed or foreign id. */
export async function findVisible(store: Pick<KeyStore, "findById">, actor: Actor, id: string): Promise<KeyRecord> {
  if (!UUID_V4.test(id)) throw new NotFoundError();
  const record = await store.findById(id);
  if (!record || !maySee(actor, record.owner)) {
    throw new NotFoundError();
  }
  return record;
}
