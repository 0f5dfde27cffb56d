/**
 * The identity provider's key set (JWT_JWKS_URL), fetched by jose and kept per isolate, made to ride
 * out an outage of the provider:
 * - after a failed fetch, tokens are answered at once (503, "try later") for FAILURE_COOLDOWN_MS,
 *   instead of every request waiting for its own fetch to time out (jose cools down only after a
 *   successful fetch);
 * - the keys of the last successful fetch stay usable for STALE_IF_ERROR_MS after that fetch while
 *   the provider cannot be reached, so a short outage does not log everyone out. A token signed by a
 *   key that set does not hold is not refused (401) during an outage but answered 503: the key may be
 *   new.
 */
import {
  type ExportedJWKSCache,
  type JWKSCacheInput,
  type JWTVerifyGetKey,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwksCache,
} from "jose";
import { IdentityProviderUnavailableError } from "./errors";

const FETCH_TIMEOUT_MS = 3_000;
/** jose refetches the set when a token names a key it does not hold, at most this often. */
const REFETCH_COOLDOWN_MS = 30_000;
const CACHE_MAX_AGE_MS = 600_000;
export const FAILURE_COOLDOWN_MS = 10_000;
export const STALE_IF_ERROR_MS = 3_600_000;

/** A failure to obtain the key set (network, timeout, non-200, not a JWKS), as opposed to a bad token. */
export function isKeySetFailure(error: unknown): boolean {
  return (
    !(error instanceof errors.JOSEError) ||
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    error.code === "ERR_JOSE_GENERIC"
  );
}

/** The error for "the key set cannot be had now": a 503 with Retry-After, never a 401. */
export function keySetUnavailable(cause: unknown): IdentityProviderUnavailableError {
  return new IdentityProviderUnavailableError("The identity provider's key set could not be fetched", { cause });
}

function resilientKeySet(url: URL): JWTVerifyGetKey {
  /** jose records each successful fetch here: the set and when it was fetched. */
  const fetched: Partial<ExportedJWKSCache> = {};
  const remote = createRemoteJWKSet(url, {
    timeoutDuration: FETCH_TIMEOUT_MS,
    cooldownDuration: REFETCH_COOLDOWN_MS,
    cacheMaxAge: CACHE_MAX_AGE_MS,
    [jwksCache]: fetched as JWKSCacheInput,
  });
  let failedAt = 0;
  let failure: unknown = null;
  /** The keys of the last successful fetch, and when it was made. */
  let lastGood: { readonly keys: JWTVerifyGetKey; readonly fetchedAt: number } | null = null;

  /** During an outage: the last good keys while they are recent enough, else the failure. */
  async function fromLastGood(now: number, ...args: Parameters<JWTVerifyGetKey>) {
    if (!lastGood || now - lastGood.fetchedAt >= STALE_IF_ERROR_MS) throw failure;
    try {
      return await lastGood.keys(...args);
    } catch (error) {
      // A key the old set does not hold may be one the provider added since: not the token's fault.
      if (error instanceof errors.JWKSNoMatchingKey) throw failure;
      throw error;
    }
  }

  return async (...args) => {
    const now = Date.now();
    if (now - failedAt < FAILURE_COOLDOWN_MS) return fromLastGood(now, ...args);
    try {
      const key = await remote(...args);
      if (fetched.jwks && fetched.uat !== undefined && fetched.uat !== lastGood?.fetchedAt) {
        lastGood = { keys: createLocalJWKSet(fetched.jwks), fetchedAt: fetched.uat };
      }
      return key;
    } catch (error) {
      if (!isKeySetFailure(error)) throw error;
      failedAt = now;
      failure = keySetUnavailable(error);
      return fromLastGood(now, ...args);
    }
  };
}

const keySets = new Map<string, JWTVerifyGetKey>();

/** The key set for `url`, one per isolate. */
export function keySetFor(url: URL): JWTVerifyGetKey {
  let set = keySets.get(url.href);
  if (!set) {
    set = resilientKeySet(url);
    keySets.set(url.href, set);
  }
  return set;
}
