/**
 * Turns the Worker's string variables into a typed, checked configuration, once per env object.
 * A misconfiguration is reported by name in the log and makes the affected feature refuse service;
 * it never silently weakens a check.
 */
import type { Env } from "./env";
import { isValidPrefix } from "./keys/format";

export interface JwtConfig {
  /** HS256 secret (local development). Ignored when `jwksUrl` is set. */
  readonly secret: Uint8Array | null;
  readonly jwksUrl: URL | null;
  readonly issuer: string | null;
  readonly audience: string | null;
  /** The claim that names the caller's workspace. */
  readonly orgClaim: string;
  readonly clockToleranceSeconds: number;
}

export interface Config {
  readonly keyPrefix: string;
  readonly jwt: JwtConfig;
  /** How often each isolate reads the change feed from D1 (the bound on cross-location revocation). */
  readonly revocationSyncMs: number;
  /**
   * How long this isolate may go without a successful feed sync before it stops trusting what it
   * learnt before: past it, a key is answered only from a fresh D1 read (so 503 while D1 is down).
   */
  readonly maxStalenessMs: number;
  /** The most live (not revoked, not expired) keys one owner may hold. */
  readonly maxKeysPerOwner: number;
  /** Problems found while reading the configuration, by variable name. */
  readonly errors: readonly string[];
}

const MIN_JWT_SECRET_LENGTH = 32;
const DEFAULT_PREFIX = "lk";
const DEFAULT_SYNC_SECONDS = 5;
const DEFAULT_MAX_STALENESS_SECONDS = 60;
const DEFAULT_MAX_KEYS_PER_OWNER = 10_000;

const cache = new WeakMap<Env, Config>();

const text = (value: string | undefined): string | null => {
  const trimmed = value?.trim();
  return trimmed ? trimmed : null;
};

export function loadConfig(env: Env): Config {
  let config = cache.get(env);
  if (!config) {
    config = readConfig(env);
    for (const error of config.errors) console.error(`latchkey configuration: ${error}`);
    cache.set(env, config);
  }
  return config;
}

function readConfig(env: Env): Config {
  const errors: string[] = [];

  let keyPrefix = text(env.KEY_PREFIX) ?? DEFAULT_PREFIX;
  if (!isValidPrefix(keyPrefix)) {
    errors.push(
      `KEY_PREFIX must be 1-16 lowercase letters and digits, starting with a letter; using "${DEFAULT_PREFIX}"`,
    );
    keyPrefix = DEFAULT_PREFIX;
  }

  let jwksUrl: URL | null = null;
  const rawJwks = text(env.JWT_JWKS_URL);
  if (rawJwks) {
    const url = URL.canParse(rawJwks) ? new URL(rawJwks) : null;
    const local = url?.hostname === "localhost" || url?.hostname === "127.0.0.1";
    if (url && (url.protocol === "https:" || (url.protocol === "http:" && local))) {
      jwksUrl = url;
      if (!text(env.JWT_ISSUER) || !text(env.JWT_AUDIENCE)) {
        errors.push(
          "JWT_JWKS_URL is set without JWT_ISSUER and JWT_AUDIENCE: tokens your provider issued for other apps are accepted",
        );
      }
    } else {
      errors.push("JWT_JWKS_URL must be an https: URL (http: only for localhost); JWT authentication is disabled");
    }
  }

  let secret: Uint8Array | null = null;
  const rawSecret = text(env.JWT_SECRET);
  if (rawSecret && !rawJwks) {
    if (rawSecret.length < MIN_JWT_SECRET_LENGTH) {
      errors.push(`JWT_SECRET must be at least ${MIN_JWT_SECRET_LENGTH} characters; JWT authentication is disabled`);
    } else {
      secret = new TextEncoder().encode(rawSecret);
    }
  }
  if (!rawSecret && !rawJwks) errors.push("neither JWT_JWKS_URL nor JWT_SECRET is set; JWT authentication is disabled");

  const syncSeconds = Number(text(env.REVOCATION_SYNC_SECONDS) ?? DEFAULT_SYNC_SECONDS);
  let revocationSyncMs = DEFAULT_SYNC_SECONDS * 1000;
  if (Number.isFinite(syncSeconds) && syncSeconds >= 0.1 && syncSeconds <= 60) {
    revocationSyncMs = Math.round(syncSeconds * 1000);
  } else {
    errors.push(`REVOCATION_SYNC_SECONDS must be a number from 0.1 to 60; using ${DEFAULT_SYNC_SECONDS}`);
  }

  // Never below two sync intervals: an isolate that syncs on schedule must never count as stale.
  const minStalenessMs = 2 * revocationSyncMs;
  let maxStalenessMs = Math.max(DEFAULT_MAX_STALENESS_SECONDS * 1000, minStalenessMs);
  const staleness = text(env.MAX_STALENESS_SECONDS);
  if (staleness !== null) {
    const seconds = Number(staleness);
    if (Number.isFinite(seconds) && seconds * 1000 >= minStalenessMs && seconds <= 3600) {
      maxStalenessMs = Math.round(seconds * 1000);
    } else {
      errors.push(
        `MAX_STALENESS_SECONDS must be a number from twice REVOCATION_SYNC_SECONDS to 3600; using ${maxStalenessMs / 1000}`,
      );
    }
  }

  let maxKeysPerOwner = DEFAULT_MAX_KEYS_PER_OWNER;
  const rawMaxKeys = text(env.MAX_KEYS_PER_OWNER);
  if (rawMaxKeys !== null) {
    const count = Number(rawMaxKeys);
    if (Number.isSafeInteger(count) && count >= 1 && count <= 1_000_000) maxKeysPerOwner = count;
    else errors.push(`MAX_KEYS_PER_OWNER must be a whole number from 1 to 1000000; using ${maxKeysPerOwner}`);
  }

  return {
    keyPrefix,
    jwt: {
      secret,
      jwksUrl,
      issuer: text(env.JWT_ISSUER),
      audience: text(env.JWT_AUDIENCE),
      orgClaim: text(env.JWT_ORG_CLAIM) ?? "org_id",
      clockToleranceSeconds: 30,
    },
    revocationSyncMs,
    maxStalenessMs,
    maxKeysPerOwner,
    errors,
  };
}
