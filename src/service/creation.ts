/** What every new key passes, created, imported or rotated: the creation limiter, the quota's refusal, a fresh key and its record. */
import { generateKey, keyStart } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { idInBucket, keyInBucket, ownerBucket } from "../keys/shard";
import type { Config } from "../config";
import { hasLimits } from "../keys/limit-arithmetic";
import type { Actor, KeyRecord, Owner } from "../model";
import { describeError, log } from "../log";
import type { InsertRefusal } from "../store/store";
import { actorName } from "./audit-changes";
import { CredentialNotLiveError, LimitExceededError } from "./errors";
import type { Powers } from "./rules";
import type { ServiceDeps } from "./verify";

/** The period of the KEY_CREATION_LIMITER binding (wrangler.toml), for Retry-After. */
export const CREATION_RETRY_AFTER_SECONDS = 60;

/** The per-owner creation rate (KEY_CREATION_LIMITER). A failing limiter is logged and lets the create through. */
export async function limitCreation(deps: ServiceDeps, owner: Owner): Promise<void> {
  const limiter = deps.creationLimiter;
  if (!limiter) return;
  let success = true;
  try {
    ({ success } = await limiter.limit({ key: `${owner.type}:${owner.id}` }));
  } catch (error) {
    log("warn", "key_creation_limiter_failed", { error: describeError(error) });
  }
  if (!success) {
    throw new LimitExceededError(
      "KEY_CREATION_LIMITER",
      "Too many keys created for this owner; wait before creating more",
      CREATION_RETRY_AFTER_SECONDS,
    );
  }
}

/** A conditional insert's refusal in the service's words. */
export function refusal(refused: InsertRefusal, maxKeysPerOwner: number): Error {
  if (refused === "parent_not_live") return new CredentialNotLiveError();
  return new LimitExceededError(
    "MAX_KEYS_PER_OWNER",
    `This owner already holds ${maxKeysPerOwner} live keys, the most allowed (MAX_KEYS_PER_OWNER); revoke some first`,
  );
}

/**
 * A fresh key, its hash and a new id; with sharding by owner (D1_SHARDS > 1) all carrying the owner's
 * bucket (keys/shard.ts), so the key's database is known from its hash and the id's from its first byte.
 */
async function freshKey(config: Config, owner: Owner): Promise<{ key: string; hash: string; id: string }> {
  if (config.shards.count === 1) {
    const key = generateKey(config.keyPrefix);
    return { key, hash: await sha256Hex(key), id: crypto.randomUUID() };
  }
  const bucket = await ownerBucket(owner);
  return { ...(await keyInBucket(config.keyPrefix, bucket)), id: idInBucket(bucket) };
}

/** A fresh key and its record, made by `actor` now (not yet stored). */
export async function newKey(
  deps: ServiceDeps,
  actor: Actor,
  settings: Pick<KeyRecord, "name" | "owner" | "metadata" | "rotatedFrom" | "parentId" | "limits" | "usageId"> & Powers,
): Promise<{ key: string; record: KeyRecord }> {
  const { key, hash, id } = await freshKey(deps.config, settings.owner);
  const record: KeyRecord = {
    id,
    hash,
    start: keyStart(key, deps.config.keyPrefix),
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
    parentId: settings.parentId,
    ...(hasLimits(settings.limits) ? { limits: settings.limits } : {}),
    ...(settings.usageId ? { usageId: settings.usageId } : {}),
  };
  return { key, record };
}
