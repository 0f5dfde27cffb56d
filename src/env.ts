/** The Worker's bindings and variables (wrangler.toml). Variables are strings; config.ts interprets them. */
import type { UsageCounter } from "./store/counter";

export interface Env {
  /** The store of record (with D1_SHARDS > 1, the first of its databases: docs/scaling.md). */
  DB: D1Database;
  /** Sharding by owner: how many D1 databases (DB, DB_1, ...); unset or 1: DB alone. */
  D1_SHARDS?: string;
  /** Key records by hash, so a warm verification never touches D1. */
  KEY_CACHE: KVNamespace;
  /** Counts failed authentications per client (absent: no limit). */
  AUTH_FAILURE_LIMITER?: RateLimit;
  /** Counts failed authentications of requests without CF-Connecting-IP, all one client (absent: AUTH_FAILURE_LIMITER). */
  AUTH_FAILURE_LIMITER_NO_IP?: RateLimit;
  /** Counts NOT_FOUND answers of an open POST /v1/verify per client (absent: no limit). */
  VERIFY_MISS_LIMITER?: RateLimit;
  /** Counts key creations per owner (absent: no limit). */
  KEY_CREATION_LIMITER?: RateLimit;
  /** The usage counters of keys with rate limits or credits (absent: such keys fail with 503). */
  USAGE_COUNTER?: DurableObjectNamespace<UsageCounter>;
  KEY_PREFIX?: string;
  /** The prefix of root keys (default `<KEY_PREFIX>_root`). */
  ROOT_KEY_PREFIX?: string;
  /** Comma-separated older prefixes whose keys still verify (new keys always get KEY_PREFIX). */
  ACCEPTED_PREFIXES?: string;
  /** Days after revocation or expiry when the cron deletes a key; unset or empty: never. */
  PURGE_AFTER_DAYS?: string;
  /** Workers Analytics Engine dataset for per-outcome verification counts (absent: not written). */
  VERIFY_ANALYTICS?: AnalyticsEngineDataset;
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
  /** Roles that make a person an operator (manages root keys); default `operator`; empty: nobody. */
  OPERATOR_ROLES?: string;
  /** Secret: when set, POST /v1/verify requires `Authorization: Bearer <VERIFY_TOKEN>`. */
  VERIFY_TOKEN?: string;
  REVOCATION_SYNC_SECONDS?: string;
  /** Days audit events are kept (default 90). */
  AUDIT_RETENTION_DAYS?: string;
  /** Imported key formats accepted: comma list (keys/legacy.ts; default: none). */
  LEGACY_KEY_FORMATS?: string;
  /** Secret: the pepper of `hmac-sha256:<shape>` formats (never logged). */
  LEGACY_HMAC_PEPPER?: string;
  /** Vendor dialects to mount: comma list of replicas, fastapi, autocalls, baseten (default: all). */
  DIALECTS?: string;
  /** Comma-separated origins whose pages may call the API from a browser (src/http/cors.ts). */
  ALLOWED_ORIGINS?: string;
  /** Origins whose pages may call /v1/verify from a browser (empty: none). */
  VERIFY_ALLOWED_ORIGINS?: string;
  /** CSP frame-ancestors of the keys page /ui/ (default 'none'). */
  UI_FRAME_ANCESTORS?: string;
  /** "true": /ui/dev-token mints JWTs for local development (HS256 mode only). Never set in wrangler.toml. */
  DEV_UI_TOKENS?: string;
  MAX_STALENESS_SECONDS?: string;
  /** "true": responses carry `Server-Timing: lookup;desc="memory|kv|d1"` (for load tests; off by default). */
  SERVER_TIMING?: string;
  MAX_KEYS_PER_OWNER?: string;
  IMPORT_ALLOWED?: string;
  /** What a confirmed leak report does to the key: `revoke` (default) or `disable` (docs/leaks.md). */
  LEAK_ACTION?: string;
  /** Where GitHub publishes the keys it signs secret scanning reports with (default: GitHub's own URL). */
  GITHUB_SECRET_SCANNING_KEYS_URL?: string;
  /** Days before a key's expiry when its `expiring` warnings are written: a comma list (default "7,1"; empty: none). */
  EXPIRY_WARNING_DAYS?: string;
  /** Webhook deliveries: the dispatcher's producer binding (the same Worker consumes the queue). */
  WEBHOOK_QUEUE?: Queue<WebhookMessage>;
  /** Secret: encrypts webhook signing secrets at rest (at least 32 characters). */
  WEBHOOK_SECRET_KEY?: string;
  /** "true": http://127.0.0.1 endpoints are allowed (npm start only; never in wrangler.toml). */
  WEBHOOK_ALLOW_LOOPBACK?: string;
  /** The DNS-over-HTTPS JSON endpoint that resolves a webhook's host before each delivery. */
  WEBHOOK_DNS_RESOLVER?: string;
  /** One delivery attempt's timeout in seconds (1-30, default 10). */
  WEBHOOK_TIMEOUT_SECONDS?: string;
}

/** The further databases of sharding by owner (D1_SHARDS): DB_1, DB_2, ... */
export type ShardBindings = { readonly [binding: `DB_${number}`]: D1Database | undefined };

/** A queue message: the delivery to attempt (its row holds everything else). */
export interface WebhookMessage {
  readonly delivery: string;
}
