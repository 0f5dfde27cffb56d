/** The Worker's bindings and variables (wrangler.toml). Variables are strings; config.ts interprets them. */
import type { UsageCounter } from "./store/counter";

export interface Env {
  /** The store of record. */
  DB: D1Database;
  /** Key records by hash, so a warm verification never touches D1. */
  KEY_CACHE: KVNamespace;
  /** Counts failed authentications per client (absent: no limit). */
  AUTH_FAILURE_LIMITER?: RateLimit;
  /** Counts failed authentications of requests without CF-Connecting-IP, all one client (absent: AUTH_FAILURE_LIMITER). */
  AUTH_FAILURE_LIMITER_NO_IP?: RateLimit;
  /** Counts NOT_FOUND answers of an open POST /v1/verify per client (absent: no limit). */
  VERIFY_MISS_LIMITER?: RateLimit;
  /** The usage counters of keys with rate limits or credits (absent: such keys fail with 503). */
  USAGE_COUNTER?: DurableObjectNamespace<UsageCounter>;
  KEY_PREFIX?: string;
  JWT_SECRET?: string;
  JWT_JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  JWT_ORG_CLAIM?: string;
  JWT_ALLOW_ANY_ISSUER?: string;
  JWT_ALLOW_ANY_AUDIENCE?: string;
  JWT_MAX_AGE_SECONDS?: string;
  JWT_ROLES_CLAIM?: string;
  WORKSPACE_ADMIN_ROLES?: string;
  /** Secret: when set, POST /v1/verify requires `Authorization: Bearer <VERIFY_TOKEN>`. */
  VERIFY_TOKEN?: string;
  REVOCATION_SYNC_SECONDS?: string;
  /** Imported key formats accepted: comma list of `sanctum` and `opaque:<prefix>` (default: none). */
  LEGACY_KEY_FORMATS?: string;
  /** Vendor dialects to mount: comma list of replicas, fastapi, autocalls, baseten (default: all). */
  DIALECTS?: string;
}
