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
  /** How often each isolate pulls new revocations from D1 (the bound on cross-location revocation). */
  readonly revocationSyncMs: number;
  /** How long audit events are kept before the scheduled purge deletes them. */
  readonly auditRetentionDays: number;
  /** Problems found while reading the configuration, by variable name. */
  readonly errors: readonly string[];
}

const MIN_JWT_SECRET_LENGTH = 32;
const DEFAULT_PREFIX = "lk";
const DEFAULT_SYNC_SECONDS = 5;
const DEFAULT_AUDIT_RETENTION_DAYS = 90;

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

  const retentionDays = Number(text(env.AUDIT_RETENTION_DAYS) ?? DEFAULT_AUDIT_RETENTION_DAYS);
  let auditRetentionDays = DEFAULT_AUDIT_RETENTION_DAYS;
  if (Number.isInteger(retentionDays) && retentionDays >= 1 && retentionDays <= 3650) {
    auditRetentionDays = retentionDays;
  } else {
    errors.push(`AUDIT_RETENTION_DAYS must be a whole number from 1 to 3650; using ${DEFAULT_AUDIT_RETENTION_DAYS}`);
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
    auditRetentionDays,
    errors,
  };
}
