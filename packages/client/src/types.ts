/**
 * The shapes of latchkey's HTTP API, as plain TypeScript so this package carries no runtime
 * dependency (AUDIT_ACTIONS is its one value). They mirror the zod schemas that generate latchkey's
 * /openapi.json (src/schemas/); test/clients/client-types.test.ts fails when the two drift apart.
 */

export type OwnerType = "user" | "workspace";

export interface Owner {
  readonly type: OwnerType;
  readonly id: string;
}

/** A key as latchkey shows it: everything but the key itself. */
export interface ApiKey {
  id: string;
  name: string;
  /** The key's prefix and first characters, for display. */
  start: string;
  owner_type: OwnerType;
  owner_id: string;
  scopes: string[];
  /** The resource ids the key is limited to; null: every resource. */
  resources: string[] | null;
  /** `user:<sub>`, `key:<id>` or `service`. */
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  metadata: Record<string, unknown> | null;
  /** The key that created this key; null when a person or a Worker made it. */
  parent_id: string | null;
  /** false while the key is disabled (it fails with DISABLED until enabled again). */
  enabled: boolean;
  /** The last change of any setting (created_at if none). */
  updated_at: string;
  /** The addresses and CIDR ranges the key may be used from; null: any. */
  allowed_ips: string[] | null;
  /** The key this one replaced by rotation. */
  rotated_from: string | null;
  /** The key's rate limits (empty: none). */
  ratelimits: RateLimit[];
  /** The key's credits (`remaining`: the balance now); null: none. */
  credits: { remaining: number; refill: CreditsRefill | null; low_threshold: number | null } | null;
}

/** At most `limit` requests in a burst, refilled continuously at `limit` per `duration_ms` (1 s to 1 day). */
export interface RateLimit {
  name: string;
  limit: number;
  duration_ms: number;
}

/** Tops the balance up to `amount` (never down) at each UTC midnight or 1st of the month. */
export interface CreditsRefill {
  amount: number;
  interval: "day" | "month";
}

/** Credits as create and PATCH take them (on PATCH, `remaining` sets the balance). */
export interface CreditsInput {
  remaining: number;
  refill?: CreditsRefill | null | undefined;
  /** Below this balance the credits are low (a `credits_low` audit event); null or absent: 10 % of the last set or refill. */
  low_threshold?: number | null | undefined;
}

/** `POST /v1/keys/{id}/credits`: a decrement stops at 0. */
export interface CreditsOperation {
  op: "set" | "increment" | "decrement";
  amount: number;
}

/** The balance after a credits operation; null only when the counter could not answer just then. */
export interface CreditsResult {
  remaining: number | null;
}

/** `GET /v1/keys/{id}/usage`: UTC buckets of an hour (default; the last 24 hours) or a day (the last 30 days). */
export interface UsageQuery {
  granularity?: "hour" | "day" | undefined;
  /** Start, inclusive, rounded down to its bucket (RFC 3339). */
  from?: string | undefined;
  /** End, exclusive (RFC 3339; default now). */
  to?: string | undefined;
}

/** One bucket of a key's verifications, by outcome. */
export interface UsageBucket {
  start: string;
  total: number;
  valid: number;
  rate_limited: number;
  usage_exceeded: number;
  revoked: number;
  expired: number;
  disabled: number;
  ip_not_allowed: number;
  insufficient_scope: number;
  resource_not_allowed: number;
}

export interface UsageReport {
  key_id: string;
  granularity: "hour" | "day";
  /** Every bucket of the range, oldest first (empty ones as 0). */
  buckets: UsageBucket[];
  /**
   * Verifications from this instant on may not be counted yet (counts reach latchkey's storage in
   * batches, 30 s or more late); null when the range ends before it.
   */
  pending_from: string | null;
}

/** `PUT /v1/owners/{owner_type}/{owner_id}/limits`: a field left out is unchanged; null clears it. */
export interface OwnerLimitsInput {
  ratelimits?: RateLimit[] | null | undefined;
  credits?: CreditsInput | null | undefined;
}

/** An owner's per-customer limits, shared by all its keys (`credits.remaining`: the balance now). */
export interface OwnerLimits {
  owner_type: OwnerType;
  owner_id: string;
  ratelimits: RateLimit[];
  credits: { remaining: number; refill: CreditsRefill | null; low_threshold: number | null } | null;
  updated_at: string | null;
}

/** `GET /v1/owners/{owner_type}/{owner_id}/usage`: the sum of the owner's keys' usage reports. */
export interface OwnerUsageReport {
  owner_type: OwnerType;
  owner_id: string;
  granularity: "hour" | "day";
  buckets: UsageBucket[];
  pending_from: string | null;
}

/** One rate limit of a key after a verification. */
export interface RateLimitState {
  name: string;
  limit: number;
  /** Whole requests left now. */
  remaining: number;
  /** When the limit is full again (epoch ms). */
  reset: number;
}

/** The create response: the only time `key` is shown. */
export interface CreatedApiKey extends ApiKey {
  key: string;
}

export interface KeyList {
  data: ApiKey[];
  next_cursor: string | null;
}

export interface CreateKeyInput {
  name: string;
  expires_at?: string | null | undefined;
  metadata?: Record<string, unknown> | null | undefined;
  scopes?: string[] | undefined;
  resources?: string[] | null | undefined;
  owner?: OwnerType | undefined;
  /**
   * The owner's id. Required with a root key (with `owner`): the key is that owner's. Anyone else may
   * name only the owner they act for (another: 403).
   */
  owner_id?: string | undefined;
  /** IPv4/IPv6 addresses and CIDR ranges the key may be used from; null or absent: any. */
  allowed_ips?: string[] | null | undefined;
  ratelimits?: RateLimit[] | undefined;
  credits?: CreditsInput | null | undefined;
}

/** `PATCH /v1/keys/{id}`: a field left out is unchanged; null clears a nullable one. */
export interface UpdateKeyInput {
  name?: string | undefined;
  metadata?: Record<string, unknown> | null | undefined;
  /** false: the key fails with DISABLED until set true again. */
  enabled?: boolean | undefined;
  expires_at?: string | null | undefined;
  scopes?: string[] | undefined;
  resources?: string[] | null | undefined;
  allowed_ips?: string[] | null | undefined;
  ratelimits?: RateLimit[] | undefined;
  credits?: CreditsInput | null | undefined;
}

/** `POST /v1/keys/{id}/rotate`. */
export interface RotateKeyInput {
  /** How long the old key keeps working (0-604800 s, default 0). */
  grace_seconds?: number | undefined;
}

export interface ListKeysOptions {
  /** 1-100, default 20. */
  limit?: number | undefined;
  cursor?: string | undefined;
  include_revoked?: boolean | undefined;
  /** Only keys with this `created_by`, e.g. `key:<id>` (the keys a key made). */
  created_by?: string | undefined;
  /** Only personal or workspace keys; required with a root key. */
  owner_type?: OwnerType | undefined;
  /** Only this owner's keys; required with a root key. */
  owner_id?: string | undefined;
  /**
   * `active`: not revoked and not expired; `revoked`: revoked (whatever its expiry); `expired`: not
   * revoked, past its expiry. When set, `include_revoked` is ignored.
   */
  status?: KeyStatus | undefined;
}

export type KeyStatus = "active" | "revoked" | "expired";

/** POST /v1/leaks and KeyService.reportLeaks: the leaked keys themselves, who found them and where. */
export interface LeakReportInput {
  /** 1 to 1,000 keys. */
  keys: string[];
  source?: string | undefined;
  url?: string | undefined;
}

/** One result per reported key, in order: whether it is a key of the deployment, and what was done to it. */
export interface LeakReportResult {
  data: {
    token_hash: string;
    label: "true_positive" | "false_positive";
    key_id: string | null;
    action: "revoked" | "disabled" | null;
  }[];
}

export interface RevokeOptions {
  /** Also revoke every key this key created, and theirs, in the same write (all or none). */
  cascade?: boolean | undefined;
}

export interface VerifyOptions {
  /** A scope the key must hold. */
  scope?: string | undefined;
  /** A resource id the key must be allowed. */
  resource?: string | undefined;
  /** The client's address: a key with an IP allow-list fails with IP_NOT_ALLOWED without it. */
  ip?: string | undefined;
  /**
   * Credits this verification spends (default 1; 0 peeks: it spends nothing and takes no rate-limit
   * token). Matters only for a key with limits.
   */
  cost?: number | undefined;
}

export type VerifyCode =
  | "VALID"
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "INSUFFICIENT_SCOPE"
  | "RESOURCE_NOT_ALLOWED"
  | "DISABLED"
  | "IP_NOT_ALLOWED"
  | "RATE_LIMITED"
  | "USAGE_EXCEEDED";
/** Codes for a key that is dead, unknown or unusable here: latchkey says nothing else about it. */
export type DeadKeyCode = "MALFORMED" | "NOT_FOUND" | "REVOKED" | "EXPIRED" | "DISABLED" | "IP_NOT_ALLOWED";
/**
 * Codes for a live key, valid or refused for this request only: the verdict carries its details.
 * RATE_LIMITED: one of its rate limits has no request left; USAGE_EXCEEDED: its credits do not cover
 * the cost.
 */
export type LiveKeyCode = "VALID" | "INSUFFICIENT_SCOPE" | "RESOURCE_NOT_ALLOWED" | "RATE_LIMITED" | "USAGE_EXCEEDED";

/** A dead or unknown key: nothing about it but its id (null unless the key exists: REVOKED, EXPIRED). */
export interface VerifyRefusal {
  valid: false;
  code: DeadKeyCode;
  key_id: string | null;
}

/** A live key: VALID, or refused for this request only (scope, resource), with its details. */
export interface VerifyVerdict {
  valid: boolean;
  code: LiveKeyCode;
  key_id: string;
  owner: { type: OwnerType; id: string };
  scopes: string[];
  resources: string[] | null;
  expires_at: string | null;
  /** Always true here: a disabled key is refused with DISABLED. */
  enabled: boolean;
  /** Only for a key with credits: the balance after this verification. */
  credits?: { remaining: number } | undefined;
  /** Only for a key with rate limits: each limit after this verification. */
  ratelimits?: RateLimitState[] | undefined;
  /** Only on RATE_LIMITED and USAGE_EXCEEDED: whose limit refused, the key's own or its owner's. */
  limited_by?: "key" | "owner" | undefined;
  /** Only for a key whose owner has per-customer limits, when they were consulted: the owner's balances. */
  owner_limits?: { credits?: { remaining: number } | undefined; ratelimits?: RateLimitState[] | undefined } | undefined;
}

/**
 * latchkey's answer on a key. Narrow on `code` (or `"owner" in result`) before reading a live key's
 * details: `result.code === "VALID"` gives a `VerifyVerdict`.
 */
export type VerifyResult = VerifyRefusal | VerifyVerdict;

export interface WhoAmI {
  principal: "user" | "api_key";
  owner_id: string;
  owner_type: OwnerType;
  key_id?: string | undefined;
  org_id?: string | null | undefined;
  scopes?: string[] | undefined;
  enabled?: boolean | undefined;
}

/** Every action the audit log records (a runtime list, for validating filters). */
export const AUDIT_ACTIONS = [
  "created",
  "imported",
  "upgraded",
  "updated",
  "disabled",
  "enabled",
  "rotated",
  "revoked",
  "leaked",
  "expiring",
  "expired",
  "credits_low",
  "credits_exhausted",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** One change of a key in the audit log. Never holds a key, a hash or a JWT. */
export interface AuditEvent {
  id: string;
  key_id: string;
  action: AuditAction;
  /** `user:<sub>`, `key:<id>`, `service`, or `latchkey` for the warnings latchkey writes on its own. */
  actor: string;
  at: string;
  /** Each changed field with its old and new value. */
  changes: Record<string, { old: unknown; new: unknown }>;
  /** The changer's address; null unless you own the key or administer its workspace. */
  ip: string | null;
  /** The changer's User-Agent; null unless you own the key or administer its workspace. */
  user_agent: string | null;
}

export interface EventList {
  data: AuditEvent[];
  next_cursor: string | null;
}

export interface ListEventsOptions {
  /** 1-100, default 20. */
  limit?: number | undefined;
  cursor?: string | undefined;
  /** Only events of this action. */
  action?: AuditAction | undefined;
  /** Only events at or after this time (RFC 3339). */
  since?: string | undefined;
  /** Only events before this time (RFC 3339). */
  until?: string | undefined;
}

/** `GET /v1/events` by owner: one owner's events (required with a root key, which names the owner). */
export interface OwnerFilter {
  owner_type?: OwnerType | undefined;
  owner_id?: string | undefined;
}

/** `POST /v1/root-keys` (operators only): what the root key may do, for whom, until when, from where. */
export interface CreateRootKeyInput {
  name: string;
  /** `user:*`, `workspace:*`, or one owner (`user:cust_42`, `workspace:acme`). Default: both `*`. */
  owners?: string[] | undefined;
  /** `keys:read` and/or `keys:write` (neither implies the other). Default: both. */
  scopes?: RootScope[] | undefined;
  expires_at?: string | null | undefined;
  allowed_ips?: string[] | null | undefined;
}

export type RootScope = "keys:read" | "keys:write";

/** A root key as latchkey shows it (never the key itself, except once in `CreatedRootKey`). */
export interface RootKey {
  id: string;
  name: string;
  start: string;
  owners: string[];
  scopes: RootScope[];
  allowed_ips: string[] | null;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  rotated_from: string | null;
  last_used_at: string | null;
}

export interface CreatedRootKey extends RootKey {
  /** The root key itself: shown only in this response. Store it as a secret now. */
  key: string;
}

export interface RootKeyList {
  data: RootKey[];
  next_cursor: string | null;
}

export interface ListRootKeysOptions {
  limit?: number | undefined;
  cursor?: string | undefined;
  include_revoked?: boolean | undefined;
}

/** What a webhook delivery is about (docs/webhooks.md). */
export type WebhookEventType =
  | "key.created"
  | "key.updated"
  | "key.disabled"
  | "key.enabled"
  | "key.rotated"
  | "key.revoked"
  | "key.expiring"
  | "key.expired"
  | "key.leaked"
  | "credits.low"
  | "credits.exhausted";

/**
 * `POST /v1/webhooks` (and KeyService.createWebhook): where to deliver, which types, whose keys' events.
 * A root key names one owner it covers (`owner` + `owner_id`) or gives owner patterns (`owners`).
 */
export interface CreateWebhookInput {
  url: string;
  /** null or absent: every type. */
  events?: WebhookEventType[] | null | undefined;
  description?: string | null | undefined;
  owner?: "user" | "workspace" | "deployment" | undefined;
  owner_id?: string | undefined;
  /** A root key only: owner patterns within its own (`user:*`, `workspace:acme`). */
  owners?: string[] | undefined;
}

/** `PATCH /v1/webhooks/{id}`: a field left out is unchanged. */
export interface UpdateWebhookInput {
  url?: string | undefined;
  events?: WebhookEventType[] | null | undefined;
  description?: string | null | undefined;
  /** false: nothing is delivered until set true again. */
  enabled?: boolean | undefined;
}

/** `POST /v1/webhooks/{id}/rotate-secret`. */
export interface RotateWebhookSecretInput {
  /** How long the old secret keeps signing beside the new one (0-604800 s, default 86400). */
  grace_seconds?: number | undefined;
}

/** A webhook endpoint (never its secret, except once in `CreatedWebhook`). */
export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  events: WebhookEventType[] | null;
  owner_type: "user" | "workspace" | "deployment" | "root";
  owner_id: string;
  /** A root key's endpoint: the owner patterns whose events it receives; null for the others. */
  owners: string[] | null;
  enabled: boolean;
  disabled_reason: string | null;
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string | null;
}

/** The register and rotate-secret response: the only time `secret` (`whsec_…`) is shown. */
export interface CreatedWebhook extends Webhook {
  secret: string;
}

export interface WebhookList {
  data: Webhook[];
}

/** One delivery of one event to one endpoint; `id` is the `webhook-id` the receiver sees. */
export interface WebhookDelivery {
  id: string;
  event_id: string;
  type: WebhookEventType;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  last_response_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface WebhookDeliveryList {
  data: WebhookDelivery[];
  next_cursor: string | null;
}

export interface ListDeliveriesOptions {
  /** 1-100, default 20. */
  limit?: number | undefined;
  cursor?: string | undefined;
}

/** An RFC 9457 problem document, as latchkey sends every error. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string | undefined;
  /** Each invalid field, by path, with its messages. */
  errors?: Record<string, string[]> | undefined;
  /** latchkey adds members, e.g. `exceeded` on a 403, `code` on some problems. */
  [member: string]: unknown;
}

/** The formats of imported keys (LEGACY_KEY_FORMATS enables each). */
export type ImportFormat = "sanctum" | "opaque" | "hex32" | "hex64" | "base64url43" | "hmac-sha256" | "bcrypt";

/** One legacy key for `POST /v1/keys/import`: the digest of the credential, never the credential. */
export interface ImportItem {
  /** The SHA-256 or HMAC-SHA256 of the credential (64 lowercase hex digits), or its bcrypt hash. */
  hash: string;
  name: string;
  start?: string | undefined;
  owner?: OwnerType | undefined;
  /** The owner's id: required with a root key (with `owner`). */
  owner_id?: string | undefined;
  scopes?: string[] | undefined;
  resources?: string[] | null | undefined;
  expires_at?: string | null | undefined;
  created_at?: string | undefined;
  last_used_at?: string | undefined;
  metadata?: Record<string, unknown> | null | undefined;
  format?: ImportFormat | undefined;
  /** bcrypt keys: the id part of the token `<lookup_id>.<secret>`. */
  lookup_id?: string | undefined;
}

export interface ImportResult {
  imported: number;
  conflicts: number;
  /** In input order. A conflict is a hash already stored, or repeated within the batch. */
  results: { hash: string; status: "imported" | "conflict"; id: string | null }[];
}
