/** The Worker's bindings and variables (wrangler.toml). Variables are strings; config.ts interprets them. */
export interface Env {
  /** The store of record. */
  DB: D1Database;
  /** Key records by hash, so a warm verification never touches D1. */
  KEY_CACHE: KVNamespace;
  /** Counts failed authentications per client (absent: no limit). */
  AUTH_FAILURE_LIMITER?: RateLimit;
  KEY_PREFIX?: string;
  JWT_SECRET?: string;
  JWT_JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  JWT_ORG_CLAIM?: string;
  REVOCATION_SYNC_SECONDS?: string;
  /** Days audit events are kept (default 90). */
  AUDIT_RETENTION_DAYS?: string;
}
