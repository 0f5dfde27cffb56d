/**
 * Turns the Worker's string variables into a typed, checked configuration, once per env object.
 * A misconfiguration is reported by name in the log and makes the affected feature refuse service;
 * it never silently weakens a check.
 */
import type { Env } from "./env";
import { isValidPrefix } from "./keys/format";
import { readRootKeyPrefix } from "./keys/root-prefix";
import { log } from "./log";
import type { LeakAction } from "./model";
import { type LegacyFormats, parseLegacyFormats } from "./keys/legacy";
import { parseExpiryWarningDays } from "./keys/warnings";
import { readAuditRetentionDays, readPurgeAfterDays } from "./keys/purge-horizon";
import { isPublicSuffix } from "./public-suffixes";
import { type WebhookConfig, readWebhookConfig } from "./webhook-config";
import { type ShardConfig, readShardConfig } from "./shard-config";

export interface JwtConfig {
  /** HS256 secret (local development). Ignored when `jwksUrl` is set. */
  readonly secret: Uint8Array | null;
  readonly jwksUrl: URL | null;
  readonly issuer: string | null;
  readonly audience: string | null;
  /** The claim that names the caller's workspace. */
  readonly orgClaim: string;
  readonly clockToleranceSeconds: number;
  /** The longest lifetime (exp - iat) a token may have, in seconds; null: no cap (and iat optional). */
  readonly maxAgeSeconds: number | null;
  /** The claim that lists the caller's roles: a string or an array of strings. */
  readonly rolesClaim: string;
  /** The roles that make a member a workspace admin; empty: every member is one. */
  readonly adminRoles: readonly string[];
  /** The roles that make a person an operator (OPERATOR_ROLES); empty: nobody is one. */
  readonly operatorRoles: readonly string[];
}

/**
 * Who may call POST /v1/verify: anyone (`open`), only callers presenting `token` (VERIFY_TOKEN), or
 * nobody (`refused`: VERIFY_TOKEN is set but unusable, so the endpoint fails closed).
 */
export type VerifyAccess =
  { readonly kind: "open" } | { readonly kind: "token"; readonly token: string } | { readonly kind: "refused" };

export interface Config {
  /** The prefix of new keys. */
  readonly keyPrefix: string;
  /** Prefixes whose keys verify: keyPrefix first, then ACCEPTED_PREFIXES (so a prefix can change). */
  readonly acceptedPrefixes: readonly string[];
  /**
   * The prefix of root keys (ROOT_KEY_PREFIX; default `<KEY_PREFIX>_root`), or null when it would
   * collide with a product key's prefix or an imported format (then root keys are refused).
   */
  readonly rootKeyPrefix: string | null;
  /** Days after revocation or expiry when the cron deletes a key; null: never. */
  readonly purgeAfterDays: number | null;
  readonly jwt: JwtConfig;
  /** How often each isolate reads the change feed from D1 (the bound on cross-location revocation). */
  readonly revocationSyncMs: number;
  /** How long audit events are kept before the scheduled purge deletes them. */
  readonly auditRetentionDays: number;
  readonly verifyAccess: VerifyAccess;
  /** Imported key formats verification accepts besides latchkey's own (LEGACY_KEY_FORMATS). */
  readonly legacyFormats: LegacyFormats;
  /** The pepper of HMAC-imported keys (LEGACY_HMAC_PEPPER, a secret); null: none set. */
  readonly legacyHmacPepper: string | null;
  /** The vendor dialects mounted (DIALECTS; see src/http/dialects). */
  readonly dialects: readonly DialectName[];
  /** Browser origins that may call the API (src/http/cors.ts): `/v1/*`, and `/v1/verify` apart. */
  readonly cors: { readonly origins: ReadonlySet<string>; readonly verifyOrigins: ReadonlySet<string> };
  /** The keys page (src/http/ui.ts). */
  readonly ui: UiConfig;
  /**
   * How long this isolate may go without a successful feed sync before it stops trusting what it
   * learnt before: past it, a key is answered only from a fresh D1 read (so 503 while D1 is down).
   */
  readonly maxStalenessMs: number;
  /** SERVER_TIMING=true: responses say where their verification was answered (store/lookup-tally.ts). */
  readonly serverTiming: boolean;
  /** The most live (not revoked, not expired) keys one owner may hold. */
  readonly maxKeysPerOwner: number;
  /** Who may import keys (IMPORT_ALLOWED; service/rules.ts, mayImport). */
  readonly importAllowed: ImportPolicy;
  /** Leaked-key reports (docs/leaks.md): what a confirmed leak does, and where GitHub's signing keys are. */
  readonly leaks: LeakConfig;
  /** How long before a key's expiry its `expiring` warnings are written (EXPIRY_WARNING_DAYS), in ms, largest first. */
  readonly expiryWarningMs: readonly number[];
  /** Webhooks (webhook-config.ts). */
  readonly webhooks: WebhookConfig;
  /** Sharding by owner: how many D1 databases (shard-config.ts). */
  readonly shards: ShardConfig;
  /** Problems found while reading the configuration, by variable name. */
  readonly errors: readonly string[];
}

export interface LeakConfig {
  readonly action: LeakAction;
  /** GITHUB_SECRET_SCANNING_KEYS_URL: the public keys GitHub signs its secret scanning reports with. */
  readonly githubKeysUrl: URL;
}

export const GITHUB_SECRET_SCANNING_KEYS_URL = "https://api.github.com/meta/public_keys/secret_scanning";

/** Who may import keys (IMPORT_ALLOWED): workspace admins and services only, or also people for their own keys and keys. */
export type ImportPolicy = "admins" | "personal";

export const DIALECT_NAMES = ["replicas", "fastapi", "autocalls", "baseten"] as const;
export type DialectName = (typeof DIALECT_NAMES)[number];
export interface UiConfig {
  /** The CSP `frame-ancestors` sources of /ui/: who may embed the page in a frame. */
  readonly frameAncestors: string;
  /** Whether /ui/dev-token mints tokens: DEV_UI_TOKENS=true, and only in HS256 (local development) mode. */
  readonly devTokens: boolean;
}

const MIN_JWT_SECRET_LENGTH = 32;
const MIN_VERIFY_TOKEN_LENGTH = 32;
const DEFAULT_PREFIX = "lk";
const DEFAULT_SYNC_SECONDS = 5;
const DEFAULT_MAX_AGE_SECONDS = 86_400;
/** A cap longer than a year is no cap; a typo, more likely. */
const MAX_MAX_AGE_SECONDS = 366 * 86_400;
const DEFAULT_ADMIN_ROLES = ["admin"];
const DEFAULT_OPERATOR_ROLES = ["operator"];
const DEFAULT_MAX_STALENESS_SECONDS = 60;
const DEFAULT_MAX_KEYS_PER_OWNER = 10_000;

const cache = new WeakMap<Env, Config>();

const text = (value: string | undefined): string | null => {
  const trimmed = value?.trim();
  return trimmed ? trimmed : null;
};

/** An explicit opt-in: only `true` turns it on; anything but `true`, `false` or empty is reported. */
function optIn(name: string, value: string | undefined, errors: string[]): boolean {
  const flag = text(value);
  if (flag !== null && flag !== "true" && flag !== "false") errors.push(`${name} must be true or false; using false`);
  return flag === "true";
}

/** A comma-separated list; absent: `fallback`; set but empty: the empty list. */
function list(value: string | undefined, fallback: readonly string[]): readonly string[] {
  if (value === undefined) return fallback;
  return value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

export function loadConfig(env: Env): Config {
  let config = cache.get(env);
  if (!config) {
    config = readConfig(env);
    for (const error of config.errors) log("error", "configuration_invalid", { problem: error });
    cache.set(env, config);
  }
  return config;
}

function readConfig(env: Env): Config {
  const errors: string[] = [];

  let keyPrefix = text(env.KEY_PREFIX) ?? DEFAULT_PREFIX;
  if (!isValidPrefix(keyPrefix)) {
    errors.push(
      `KEY_PREFIX must be 1-16 lowercase letters, digits and single underscores, starting with a letter; using "${DEFAULT_PREFIX}"`,
    );
    keyPrefix = DEFAULT_PREFIX;
  }
  const acceptedPrefixes = [keyPrefix];
  for (const prefix of (env.ACCEPTED_PREFIXES ?? "").split(",").map((p) => p.trim())) {
    if (!prefix || acceptedPrefixes.includes(prefix)) continue;
    if (isValidPrefix(prefix)) acceptedPrefixes.push(prefix);
    else errors.push(`ACCEPTED_PREFIXES: "${prefix}" is not a valid prefix; ignored`);
  }

  const { days: purgeAfterDays, error: purgeError } = readPurgeAfterDays(env.PURGE_AFTER_DAYS);
  if (purgeError) errors.push(purgeError);

  let jwksUrl: URL | null = null;
  const rawJwks = text(env.JWT_JWKS_URL);
  if (rawJwks) {
    const url = URL.canParse(rawJwks) ? new URL(rawJwks) : null;
    const local = url?.hostname === "localhost" || url?.hostname === "127.0.0.1";
    if (url && (url.protocol === "https:" || (url.protocol === "http:" && local))) {
      jwksUrl = url;
      // A provider's key set signs tokens for every app it serves: without both checks, a token issued
      // for another app (or by another tenant of a shared provider) would be accepted here.
      const checks = [
        {
          claim: "JWT_ISSUER",
          value: env.JWT_ISSUER,
          optOut: "JWT_ALLOW_ANY_ISSUER",
          allowAny: env.JWT_ALLOW_ANY_ISSUER,
        },
        {
          claim: "JWT_AUDIENCE",
          value: env.JWT_AUDIENCE,
          optOut: "JWT_ALLOW_ANY_AUDIENCE",
          allowAny: env.JWT_ALLOW_ANY_AUDIENCE,
        },
      ];
      for (const { claim, value, optOut, allowAny } of checks) {
        if (text(value) || optIn(optOut, allowAny, errors)) continue;
        errors.push(
          `JWT_JWKS_URL is set without ${claim} (set ${optOut}=true to accept any); JWT authentication is disabled`,
        );
        jwksUrl = null;
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

  const { days: auditRetentionDays, error: retentionError } = readAuditRetentionDays(env.AUDIT_RETENTION_DAYS);
  if (retentionError) errors.push(retentionError);

  let maxAgeSeconds: number | null = DEFAULT_MAX_AGE_SECONDS;
  const rawMaxAge = text(env.JWT_MAX_AGE_SECONDS);
  if (rawMaxAge !== null) {
    const seconds = Number(rawMaxAge);
    if (Number.isSafeInteger(seconds) && seconds >= 0 && seconds <= MAX_MAX_AGE_SECONDS) {
      maxAgeSeconds = seconds === 0 ? null : seconds;
    } else {
      errors.push(
        `JWT_MAX_AGE_SECONDS must be a whole number of seconds from 0 (no cap) to ${MAX_MAX_AGE_SECONDS}; using ${DEFAULT_MAX_AGE_SECONDS}`,
      );
    }
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

  let verifyAccess: VerifyAccess = { kind: "open" };
  const verifyToken = text(env.VERIFY_TOKEN);
  if (verifyToken !== null) {
    if (verifyToken.length >= MIN_VERIFY_TOKEN_LENGTH) {
      verifyAccess = { kind: "token", token: verifyToken };
    } else {
      errors.push(
        `VERIFY_TOKEN must be at least ${MIN_VERIFY_TOKEN_LENGTH} characters; POST /v1/verify refuses every request`,
      );
      verifyAccess = { kind: "refused" };
    }
  }

  const legacyHmacPepper = env.LEGACY_HMAC_PEPPER ? env.LEGACY_HMAC_PEPPER : null;
  const legacy = parseLegacyFormats(text(env.LEGACY_KEY_FORMATS), keyPrefix);
  errors.push(...legacy.errors);
  const rootKeyPrefix = readRootKeyPrefix(env.ROOT_KEY_PREFIX, keyPrefix, acceptedPrefixes, legacy.formats, errors);

  // Absent: every dialect; empty: none. An unknown name is reported and mounts nothing in its place.
  const dialects: DialectName[] = [];
  for (const name of (env.DIALECTS ?? DIALECT_NAMES.join(",")).split(",").map((n) => n.trim())) {
    if (!name) continue;
    if ((DIALECT_NAMES as readonly string[]).includes(name)) {
      if (!dialects.includes(name as DialectName)) dialects.push(name as DialectName);
    } else {
      errors.push(`DIALECTS names an unknown dialect "${name}" (known: ${DIALECT_NAMES.join(", ")}); not mounted`);
    }
  }
  const devTokens = text(env.DEV_UI_TOKENS) === "true";
  if (devTokens && !secret)
    errors.push("DEV_UI_TOKENS works only with JWT_SECRET (HS256) and no JWT_JWKS_URL; ignored");

  let maxKeysPerOwner = DEFAULT_MAX_KEYS_PER_OWNER;
  const rawMaxKeys = text(env.MAX_KEYS_PER_OWNER);
  if (rawMaxKeys !== null) {
    const count = Number(rawMaxKeys);
    if (Number.isSafeInteger(count) && count >= 1 && count <= 1_000_000) maxKeysPerOwner = count;
    else errors.push(`MAX_KEYS_PER_OWNER must be a whole number from 1 to 1000000; using ${maxKeysPerOwner}`);
  }

  // Empty: workspace admins and trusted services only; `personal`: people and keys too.
  const rawImport = text(env.IMPORT_ALLOWED);
  let importAllowed: ImportPolicy = "admins";
  if (rawImport === "personal") importAllowed = "personal";
  else if (rawImport !== null && rawImport !== "admins") {
    errors.push(`IMPORT_ALLOWED must be empty, "admins" or "personal"; using "admins"`);
  }

  const expiryWarnings = parseExpiryWarningDays(env.EXPIRY_WARNING_DAYS);
  if (expiryWarnings.error) errors.push(expiryWarnings.error);

  return {
    keyPrefix,
    acceptedPrefixes,
    leaks: readLeakConfig(env, errors),
    rootKeyPrefix,
    purgeAfterDays,
    jwt: {
      secret,
      jwksUrl,
      issuer: text(env.JWT_ISSUER),
      audience: text(env.JWT_AUDIENCE),
      orgClaim: text(env.JWT_ORG_CLAIM) ?? "org_id",
      clockToleranceSeconds: 30,
      maxAgeSeconds,
      rolesClaim: text(env.JWT_ROLES_CLAIM) ?? "roles",
      adminRoles: list(env.WORKSPACE_ADMIN_ROLES, DEFAULT_ADMIN_ROLES),
      operatorRoles: list(env.OPERATOR_ROLES, DEFAULT_OPERATOR_ROLES),
    },
    revocationSyncMs,
    auditRetentionDays,
    verifyAccess,
    legacyFormats: legacy.formats,
    legacyHmacPepper,
    dialects,
    cors: {
      origins: readOrigins("ALLOWED_ORIGINS", env.ALLOWED_ORIGINS, errors),
      verifyOrigins: readOrigins("VERIFY_ALLOWED_ORIGINS", env.VERIFY_ALLOWED_ORIGINS, errors),
    },
    ui: { frameAncestors: readFrameAncestors(env.UI_FRAME_ANCESTORS, errors), devTokens: devTokens && secret !== null },
    maxStalenessMs,
    serverTiming: text(env.SERVER_TIMING) === "true",
    maxKeysPerOwner,
    importAllowed,
    expiryWarningMs: expiryWarnings.thresholdsMs,
    webhooks: readWebhookConfig(env, errors),
    shards: readShardConfig(env, errors),
    errors,
  };
}

/** LEAK_ACTION (default and fallback `revoke`, the stronger) and GITHUB_SECRET_SCANNING_KEYS_URL (https; http only for loopback). */
function readLeakConfig(env: Env, errors: string[]): LeakConfig {
  const rawAction = text(env.LEAK_ACTION);
  let action: LeakAction = "revoke";
  if (rawAction === "disable") action = "disable";
  else if (rawAction !== null && rawAction !== "revoke")
    errors.push(`LEAK_ACTION must be revoke or disable; using revoke`);
  const rawUrl = text(env.GITHUB_SECRET_SCANNING_KEYS_URL);
  let githubKeysUrl = new URL(GITHUB_SECRET_SCANNING_KEYS_URL);
  if (rawUrl !== null) {
    const url = URL.canParse(rawUrl) ? new URL(rawUrl) : null;
    if (url && (url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url)))) githubKeysUrl = url;
    else
      errors.push(
        `GITHUB_SECRET_SCANNING_KEYS_URL must be an https: URL (http: only for localhost); using ${GITHUB_SECRET_SCANNING_KEYS_URL}`,
      );
  }
  return { action, githubKeysUrl };
}

/** A DNS name or an IP address; no wildcard (the URL parser lets `*` through). */
const HOSTNAME = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/;
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Whether `url` names this machine (http: is accepted only there). */
export function isLoopback(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname);
}

/**
 * A comma-separated list of exact origins as browsers send them (`https://app.example.com`, lowercase,
 * no default port, path or wildcard; http: only for localhost). A bad entry is reported and left out.
 */
function readOrigins(name: string, raw: string | undefined, errors: string[]): ReadonlySet<string> {
  const origins = new Set<string>();
  for (const entry of (raw ?? "").split(",")) {
    const origin = entry.trim();
    if (!origin) continue;
    const url = URL.canParse(origin) ? new URL(origin) : null;
    const scheme = url?.protocol === "https:" || (url?.protocol === "http:" && isLoopback(url));
    if (url && scheme && url.origin === origin && HOSTNAME.test(url.hostname)) origins.add(origin);
    else errors.push(`${name}: "${origin}" is not an exact https origin such as https://app.example.com; ignored`);
  }
  return origins;
}

const FRAME_SOURCE =
  /^(?:'self'|https:\/\/(?:\*\.)?[a-z0-9.-]+(?::\d{1,5})?|http:\/\/(?:localhost|127\.0\.0\.1)(?::\d{1,5})?)$/;

/** `https://*.<domain>[:port]` → `<domain>`, for any other source null. */
const wildcardDomain = (source: string): string | null => /^https:\/\/\*\.([^:]+)/.exec(source)?.[1] ?? null;

/**
 * UI_FRAME_ANCESTORS: `'none'` (default), or `'self'` and origins separated by spaces. A wildcard
 * directly under a public or shared-hosting suffix (`https://*.com`, `https://*.workers.dev`;
 * public-suffixes.ts) would let strangers' sites frame the page: refused like any bad value.
 */
function readFrameAncestors(raw: string | undefined, errors: string[]): string {
  const value = text(raw);
  if (!value || value === "'none'") return "'none'";
  const sources = value.split(/\s+/);
  if (!sources.every((source) => FRAME_SOURCE.test(source))) {
    errors.push(`UI_FRAME_ANCESTORS must be 'none', or 'self' and https origins separated by spaces; using 'none'`);
    return "'none'";
  }
  const open = sources.filter((source) => {
    const domain = wildcardDomain(source);
    return domain !== null && isPublicSuffix(domain);
  });
  if (open.length === 0) return sources.join(" ");
  errors.push(
    `UI_FRAME_ANCESTORS must not put a wildcard directly under a public or shared-hosting suffix (${open.join(", ")}: anyone may have a site there); name your own domain, such as https://*.example.com; using 'none'`,
  );
  return "'none'";
}
