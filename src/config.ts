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
  /** Browser origins that may call the API (src/http/cors.ts): `/v1/*`, and `/v1/verify` apart. */
  readonly cors: { readonly origins: ReadonlySet<string>; readonly verifyOrigins: ReadonlySet<string> };
  /** The keys page (src/http/ui.ts). */
  readonly ui: UiConfig;
  /** Problems found while reading the configuration, by variable name. */
  readonly errors: readonly string[];
}

export interface UiConfig {
  /** The CSP `frame-ancestors` sources of /ui/: who may embed the page in a frame. */
  readonly frameAncestors: string;
  /** Whether /ui/dev-token mints tokens: DEV_UI_TOKENS=true, and only in HS256 (local development) mode. */
  readonly devTokens: boolean;
}

const MIN_JWT_SECRET_LENGTH = 32;
const DEFAULT_PREFIX = "lk";
const DEFAULT_SYNC_SECONDS = 5;

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

  const devTokens = text(env.DEV_UI_TOKENS) === "true";
  if (devTokens && !secret)
    errors.push("DEV_UI_TOKENS works only with JWT_SECRET (HS256) and no JWT_JWKS_URL; ignored");

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
    cors: {
      origins: readOrigins("ALLOWED_ORIGINS", env.ALLOWED_ORIGINS, errors),
      verifyOrigins: readOrigins("VERIFY_ALLOWED_ORIGINS", env.VERIFY_ALLOWED_ORIGINS, errors),
    },
    ui: { frameAncestors: readFrameAncestors(env.UI_FRAME_ANCESTORS, errors), devTokens: devTokens && secret !== null },
    errors,
  };
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

/** UI_FRAME_ANCESTORS: `'none'` (default), or `'self'` and origins separated by spaces. */
function readFrameAncestors(raw: string | undefined, errors: string[]): string {
  const value = text(raw);
  if (!value || value === "'none'") return "'none'";
  const sources = value.split(/\s+/);
  if (sources.every((source) => FRAME_SOURCE.test(source))) return sources.join(" ");
  errors.push(`UI_FRAME_ANCESTORS must be 'none', or 'self' and https origins separated by spaces; using 'none'`);
  return "'none'";
}
