/**
 * Every shape the API accepts or returns, as zod schemas: the single source for request validation,
 * the TypeScript types and the OpenAPI document (schemas with `meta({ id })` become components).
 *
 * Written with `zod/mini` (functional checks: `z.optional(s)`, `s.check(z.maxLength(n))`): the same
 * schemas and parser as classic zod, but tree-shakable, so the Worker bundles only what is used
 * (README, "Bundle size"). Metadata for the document is attached with `.apply(meta({ ... }))`.
 */
import * as z from "zod/mini";
import { parseAddress, parseRange } from "./keys/ip";
import { SCOPE_PATTERN } from "./keys/scopes";
import { PROBLEMS, PROBLEM_CODES, problemType } from "./problems";
import { MAX_CREDITS } from "./keys/usage";

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "an array",
  object: "an object",
  record: "an object",
};

const count = (n: number | bigint, one: string, many: string) => `${n} ${n === 1 || n === 1n ? one : many}`;

/**
 * Every validation message in plain words a client can show to a person ("Must be a string", "Must
 * have at most 50 items"), never a library's internals ("expected string, received number"). Fields
 * with their own wording (limits, patterns) set it on the schema, which takes precedence.
 */
function plainMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "Required";
      if (issue.input === null) return "Must not be null";
      return `Must be ${TYPE_WORDS[issue.expected] ?? issue.expected}`;
    case "too_small":
      if (issue.origin === "string") return `Must be at least ${count(issue.minimum, "character", "characters")}`;
      if (issue.origin === "array" || issue.origin === "set")
        return `Must have at least ${count(issue.minimum, "item", "items")}`;
      return `Must be at least ${issue.minimum}`;
    case "too_big":
      if (issue.origin === "string") return `Must be at most ${count(issue.maximum, "character", "characters")}`;
      if (issue.origin === "array" || issue.origin === "set")
        return `Must have at most ${count(issue.maximum, "item", "items")}`;
      return `Must be at most ${issue.maximum}`;
    case "invalid_format":
      if (issue.format === "datetime")
        return "Must be an RFC 3339 date-time with a time zone, e.g. 2027-01-31T12:00:00Z";
      if (issue.format === "uuid") return "Must be a UUID";
      return "Has the wrong format";
    case "invalid_value":
      return `Must be one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return "Unknown field";
    default:
      return "Is invalid";
  }
}

z.config({ customError: plainMessage });

const METADATA_MAX_BYTES = 2048;
const utf8 = new TextEncoder();
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
/**
 * Owner ids (JWT subjects, workspace ids, RPC owners): no control characters, no invisible format or
 * bidi controls (\p{Cf}: U+200B, U+202E, U+2066-2069, U+FEFF...), which make one id look like another,
 * no lone surrogates.
 */
export const WELL_FORMED_ID = /^[^\p{Cc}\p{Cf}\p{Cs}]+$/u;
/** Unicode format characters: zero-width and bidi controls that make text display as what it is not. */
const FORMAT_CHARS = /\p{Cf}/u;
/** A UTF-16 surrogate not part of a pair: not Unicode, and D1 would store it as U+FFFD. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * OpenAPI metadata for a schema (`id` makes it a component), as `.apply(meta({ ... }))`. Like classic
 * zod's `.meta()` it registers a copy, so a shared schema can be described differently where it is used,
 * and, unlike a `z.meta()` check, it adds nothing to the schema's checks (objects with checks cannot be
 * extended or picked).
 */
export const meta =
  (metadata: z.core.GlobalMeta) =>
  <T extends z.ZodMiniType>(schema: T): T =>
    (schema.clone() as z.ZodMiniType).register(z.globalRegistry, metadata) as T;

/** `schema` with a description in the OpenAPI document. */
export const described = <T extends z.ZodMiniType>(schema: T, description: string): T => meta({ description })(schema);

const Timestamp = z.iso.datetime({ offset: true }).apply(
  meta({
    description: "An RFC 3339 date-time.",
    example: "2027-01-31T12:00:00Z",
  }),
);

const KeyId = z.uuid({ version: "v4" }).apply(meta({ description: "The key's id (UUID v4)." }));

export const Scope = z
  .string()
  .check(z.maxLength(100), z.regex(SCOPE_PATTERN, "Must be lowercase resource:action, resource:* or *"))
  .apply(meta({ id: "Scope", example: "models:invoke" }));

const ResourceId = z
  .string()
  .check(
    z.minLength(1),
    z.maxLength(128),
    z.regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, "Must be letters, digits and . _ : / @ -"),
  )
  .apply(meta({ id: "ResourceId", example: "model_abc123" }));

const KeyName = z.string().check(
  z.trim(),
  z.minLength(1, "Must not be empty"),
  z.maxLength(100, "Must be at most 100 characters"),
  z.refine((name) => !CONTROL_CHARS.test(name), "Must not contain control characters"),
  z.refine((name) => !FORMAT_CHARS.test(name), "Must not contain invisible format or bidi control characters"),
  z.refine((name) => !LONE_SURROGATE.test(name), "Must be valid Unicode (no lone surrogates)"),
);

const Metadata = z
  .record(z.string(), z.unknown())
  .check(
    z.refine(
      (value) => utf8.encode(JSON.stringify(value)).byteLength <= METADATA_MAX_BYTES,
      `Must be at most ${METADATA_MAX_BYTES} bytes as JSON`,
    ),
  )
  .apply(meta({ description: "Any JSON object you want returned with the key (at most 2 KB)." }));

const unique = <T>(values: T[]): T[] => [...new Set(values)];
/** An array of 1 to `max` `item`s, duplicates dropped. */
const uniqueArray = <T extends z.core.SomeType>(item: T, max: number, tooFew?: string) =>
  z.pipe(z.array(item).check(z.minLength(1, tooFew), z.maxLength(max)), z.transform(unique<z.output<T>>));

const IpRange = z
  .string()
  .check(
    z.maxLength(64, "Must be at most 64 characters"),
    z.superRefine((text, ctx) => {
      const range = parseRange(text);
      if (typeof range === "string") ctx.addIssue({ code: "custom", message: range });
    }),
  )
  .apply(meta({ id: "IpRange", example: "203.0.113.0/24" }));

const AllowedIps = z
  .nullable(uniqueArray(IpRange, 100, "Must name at least one address or range (null: any address)"))
  .apply(
    meta({
      description:
        "IPv4/IPv6 addresses and CIDR ranges the key may be used from; null: any. Checked against CF-Connecting-IP on latchkey's routes and against `ip` in verification.",
    }),
  );

const FutureTimestamp = Timestamp.check(z.refine((t) => Date.parse(t) > Date.now(), "Must be in the future"));

// ---- Usage control (issue 13): rate limits, credits, cost, the usage report. One block, kept together.

const MAX_RATE_LIMITS = 10;
const DAY_MS = 86_400_000;

/** One named rate limit (a token bucket: keys/usage.ts). */
export const RateLimit = z
  .strictObject({
    name: z
      .string()
      .check(
        z.minLength(1, "Must not be empty"),
        z.maxLength(64, "Must be at most 64 characters"),
        z.regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "Must be letters, digits and . _ : -"),
      )
      .apply(meta({ example: "requests" })),
    limit: z.int("Must be a whole number").check(z.gte(1, "Must be at least 1"), z.lte(1_000_000_000)),
    duration_ms: z
      .int("Must be a whole number")
      .check(z.gte(1000, "Must be at least 1000 (1 s)"), z.lte(DAY_MS, `Must be at most ${DAY_MS} (1 day)`))
      .apply(meta({ example: 1000 })),
  })
  .apply(
    meta({
      id: "RateLimit",
      description: "At most `limit` requests in a burst, refilled continuously at `limit` per `duration_ms`.",
    }),
  );

/** A key's rate limits: create, PATCH and RPC take this field as is. */
export const RateLimits = z
  .array(RateLimit)
  .check(
    z.maxLength(MAX_RATE_LIMITS, `Must hold at most ${MAX_RATE_LIMITS} rate limits`),
    z.superRefine((limits, ctx) => {
      const seen = new Set<string>();
      limits.forEach((limit, i) => {
        if (seen.has(limit.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: "Must be unique" });
        seen.add(limit.name);
      });
    }),
  )
  .apply(meta({ description: "Named rate limits, all applied to every verification (at most 10, unique names)." }));

const CreditAmount = z
  .int("Must be a whole number")
  .check(z.gte(0, "Must be at least 0"), z.lte(MAX_CREDITS, `Must be at most ${MAX_CREDITS}`));

const CreditsRefill = z.strictObject({
  amount: CreditAmount.check(z.gte(1, "Must be at least 1")),
  interval: z.enum(["day", "month"]),
});

/** A key's credits: create, PATCH and RPC take this field as is (null: no credits). */
export const Credits = z
  .strictObject({
    remaining: CreditAmount.apply(
      meta({
        description: "The balance; each verification spends its `cost`. On PATCH: the balance is set to it.",
      }),
    ),
    refill: z._default(z.nullable(CreditsRefill), null).apply(
      meta({
        description:
          "Tops the balance up to `amount` (never down) at each UTC midnight (`day`) or 1st of the month (`month`).",
      }),
    ),
  })
  .apply(meta({ id: "Credits" }));

/** Credits as a key's view shows them: `remaining` is the live balance. */
const CreditsView = z.object({
  remaining: z.int().apply(meta({ description: "The balance now (at creation: the starting balance)." })),
  refill: z.nullable(z.object({ amount: z.int(), interval: z.enum(["day", "month"]) })),
});

/** The usage part of a live key's verdict. */
const verdictUsageFields = {
  credits: z
    .optional(z.object({ remaining: z.int() }))
    .apply(meta({ description: "Only for a key with credits: the balance after this verification." })),
  ratelimits: z
    .optional(
      z.array(
        z.object({
          name: z.string(),
          limit: z.int(),
          remaining: z.int().apply(meta({ description: "Whole requests left now." })),
          reset: z.int().apply(meta({ description: "When the limit is full again (epoch ms)." })),
        }),
      ),
    )
    .apply(meta({ description: "Only for a key with rate limits: each limit after this verification." })),
};

const VerifyCost = z.optional(CreditAmount).apply(
  meta({
    description:
      "Credits this verification spends (default 1). 0 peeks: it spends nothing and takes no rate-limit token.",
  }),
);

export const CreditsRequest = z
  .strictObject({
    op: z.enum(["set", "increment", "decrement"]).apply(
      meta({
        description:
          "`set` the balance, or `increment` / `decrement` it. A decrement never takes the balance below 0: it stops at 0 (see `remaining` in the answer).",
      }),
    ),
    amount: CreditAmount,
  })
  .apply(meta({ id: "CreditsRequest" }));
export type CreditsInput = z.output<typeof CreditsRequest>;

export const CreditsResult = z
  .object({
    remaining: z.nullable(z.int()).apply(
      meta({
        description:
          "The balance after the operation; null only when the counter could not be reached just now (the operation is recorded all the same and applies at its next call: do not repeat it).",
      }),
    ),
  })
  .apply(meta({ id: "CreditsResult" }));
export type CreditsResultView = z.infer<typeof CreditsResult>;

export const UsageQuery = z
  .strictObject({
    granularity: z._default(z.enum(["hour", "day"]), "hour").apply(meta({ description: "Bucket size, in UTC." })),
    from: z.optional(Timestamp).apply(
      meta({
        description:
          "Start (inclusive, rounded down to its bucket). Default: 24 hours (hour) or 30 days (day) before `to`.",
      }),
    ),
    to: z.optional(Timestamp).apply(meta({ description: "End (exclusive). Default: now." })),
  })
  .apply(meta({ id: "UsageQuery" }));
export type UsageQueryInput = z.output<typeof UsageQuery>;

/** The verdicts counted per key: every code a verification about a found key can give. */
export const USAGE_OUTCOMES = [
  "VALID",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "IP_NOT_ALLOWED",
  "INSUFFICIENT_SCOPE",
  "RESOURCE_NOT_ALLOWED",
] as const satisfies readonly VerifyCode[];

const UsageCount = z.int().check(z.gte(0));
export const UsageBucket = z
  .object({
    start: Timestamp,
    total: UsageCount,
    ...(Object.fromEntries(USAGE_OUTCOMES.map((code) => [code.toLowerCase(), UsageCount])) as Record<
      Lowercase<(typeof USAGE_OUTCOMES)[number]>,
      typeof UsageCount
    >),
  })
  .apply(meta({ id: "UsageBucket" }));

export const UsageReport = z
  .object({
    key_id: KeyId,
    granularity: z.enum(["hour", "day"]),
    buckets: z
      .array(UsageBucket)
      .apply(meta({ description: "Every bucket of the range, oldest first (empty ones as 0)." })),
  })
  .apply(meta({ id: "UsageReport" }));
export type UsageReportView = z.infer<typeof UsageReport>;

// ---- End of usage control.

export const CreateKeyRequest = z
  .strictObject({
    name: KeyName.apply(meta({ description: "A label for people, 1-100 characters after trimming." })),
    expires_at: z.optional(z.nullable(FutureTimestamp)),
    metadata: z.optional(z.nullable(Metadata)),
    scopes: z.optional(uniqueArray(Scope, 50)).apply(
      meta({
        description:
          'What the key may do. Default: ["*"] for a key made by a person; the creating key\'s scopes for a key made by a key.',
      }),
    ),
    resources: z
      .optional(z.nullable(uniqueArray(ResourceId, 100)))
      .apply(meta({ description: "The resource ids the key is limited to; null or absent: every resource." })),
    owner: z.optional(z.enum(["user", "workspace"])).apply(
      meta({
        description:
          "`user` (default): a personal key. `workspace`: a key of the caller's workspace (the JWT's org claim).",
      }),
    ),
    allowed_ips: z.optional(AllowedIps),
    ratelimits: z.optional(RateLimits),
    credits: z.optional(z.nullable(Credits)),
  })
  .apply(meta({ id: "CreateKeyRequest" }));
export type CreateKeyInput = z.output<typeof CreateKeyRequest>;

/** A partial update: a field left out is unchanged; null clears a nullable one. */
export const UpdateKeyRequest = z
  .strictObject({
    name: z.optional(CreateKeyRequest.shape.name),
    metadata: z.optional(z.nullable(Metadata)),
    enabled: z
      .optional(z.boolean())
      .apply(meta({ description: "false: the key fails with DISABLED until set true again." })),
    expires_at: z.optional(z.nullable(FutureTimestamp)),
    scopes: z.optional(uniqueArray(Scope, 50)),
    resources: CreateKeyRequest.shape.resources,
    allowed_ips: z.optional(AllowedIps),
    ratelimits: z.optional(RateLimits),
    credits: z.optional(z.nullable(Credits)),
  })
  .apply(
    meta({
      id: "UpdateKeyRequest",
      description: "Any field may be left out; an empty object changes nothing (200, no event).",
    }),
  );
export type UpdateKeyInput = z.output<typeof UpdateKeyRequest>;

/** Seven days: the longest an old key may keep working after a rotation. */
export const MAX_GRACE_SECONDS = 604_800;

export const RotateKeyRequest = z
  .strictObject({
    grace_seconds: z
      ._default(
        z
          .number()
          .check(
            z.int("Must be a whole number"),
            z.gte(0, "Must be at least 0"),
            z.lte(MAX_GRACE_SECONDS, `Must be at most ${MAX_GRACE_SECONDS} (7 days)`),
          ),
        0,
      )
      .apply(
        meta({
          description:
            "How long the old key keeps working (0 to 604800 s; default 0: it stops at once). It then expires at the earlier of its own expiry and now + grace_seconds.",
        }),
      ),
  })
  .apply(meta({ id: "RotateKeyRequest" }));
export type RotateKeyInput = z.output<typeof RotateKeyRequest>;

/** A query-string boolean: documented as a boolean (what generated clients send), `1`/`0` also taken. */
const BooleanQuery = z
  .pipe(
    z.enum(["true", "false", "1", "0"], { error: "Must be true or false" }),
    z.transform((v) => v === "true" || v === "1"),
  )
  .apply(
    meta({
      override: ({ jsonSchema }: { jsonSchema: Record<string, unknown> }) => {
        for (const key of Object.keys(jsonSchema)) delete jsonSchema[key];
        Object.assign(jsonSchema, { type: "boolean" });
      },
    }),
  );

const PAGE_LIMIT_MESSAGE = "Must be a whole number between 1 and 100";
const pageLimit = (number: z.ZodMiniNumber<unknown>) =>
  z._default(
    number.check(
      z.int(PAGE_LIMIT_MESSAGE),
      z.gte(1, PAGE_LIMIT_MESSAGE),
      z.lte(100, PAGE_LIMIT_MESSAGE),
    ) as z.ZodMiniNumber<number>,
    20,
  );

const pageCursor = () =>
  z.optional(z.string().check(z.maxLength(200))).apply(meta({ description: "next_cursor from the previous page." }));

/** Listing options as a query string (HTTP). */
export const ListKeysQuery = z
  .strictObject({
    limit: pageLimit(z.coerce.number({ error: PAGE_LIMIT_MESSAGE })),
    cursor: pageCursor(),
    include_revoked: z._default(BooleanQuery, false),
    created_by: z
      .optional(
        z.string().check(z.minLength(1), z.maxLength(300), z.regex(WELL_FORMED_ID, "Must have no control characters")),
      )
      .apply(meta({ description: "Only keys with this `created_by`, e.g. `key:<id>` (the keys a key made)." })),
    owner_type: z
      .optional(z.enum(["user", "workspace"]))
      .apply(meta({ description: "Only personal or workspace keys." })),
    status: z.optional(z.enum(["active", "revoked", "expired"])).apply(
      meta({
        description:
          "`active`: not revoked and not expired; `revoked`: revoked (whatever its expiry); `expired`: not revoked, past its expiry. When set, `include_revoked` is ignored.",
      }),
    ),
  })
  .apply(meta({ id: "ListKeysQuery" }));
export type ListKeysInput = z.output<typeof ListKeysQuery>;

/** The same options as typed values (RPC). */
export const ListKeysOptions = z.extend(ListKeysQuery, {
  limit: pageLimit(z.number({ error: PAGE_LIMIT_MESSAGE })),
  include_revoked: z._default(z.boolean(), false),
});

/** Revocation options as a query string (HTTP). */
export const RevokeKeyQuery = z
  .strictObject({
    cascade: z._default(BooleanQuery, false).apply(
      meta({
        description: "Also revoke every key this key created, and theirs, in the same write.",
      }),
    ),
  })
  .apply(meta({ id: "RevokeKeyQuery" }));
export type RevokeKeyInput = z.output<typeof RevokeKeyQuery>;

/** The same options as typed values (RPC). */
export const RevokeKeyOptions = z.strictObject({ cascade: z._default(z.boolean(), false) });

/** Documents the path parameter; ids are checked by the service (a malformed id is simply not found). */
export const KeyIdParams = z.strictObject({ id: z.string().apply(meta({ description: "The key's id." })) });

export const ApiKey = z
  .object({
    id: KeyId,
    name: z.string(),
    start: described(z.string(), "The key's prefix and first characters, for display."),
    owner_type: z.enum(["user", "workspace"]),
    owner_id: z.string(),
    scopes: z.array(z.string()),
    resources: z.nullable(z.array(z.string())),
    created_by: described(z.string(), "`user:<sub>`, `key:<id>` or `service`."),
    created_at: Timestamp,
    expires_at: z.nullable(Timestamp),
    revoked_at: z.nullable(Timestamp),
    last_used_at: described(z.nullable(Timestamp), "Updated at most once a minute."),
    metadata: z.nullable(z.record(z.string(), z.unknown())),
    parent_id: described(z.nullable(KeyId), "The key that created this key (null: made by a person or a Worker)."),
    enabled: described(z.boolean(), "false while the key is disabled."),
    updated_at: described(Timestamp, "The last change of any setting (created_at if none)."),
    allowed_ips: z.nullable(z.array(z.string())),
    rotated_from: described(z.nullable(KeyId), "The key this one replaced by rotation."),
    ratelimits: described(RateLimits, "The key's rate limits (empty: none)."),
    credits: z.nullable(CreditsView),
  })
  .apply(meta({ id: "ApiKey" }));
export type ApiKeyView = z.infer<typeof ApiKey>;

export const CreatedApiKey = z
  .extend(ApiKey, {
    key: described(z.string(), "The key itself. Shown only in this response: store it now."),
  })
  .apply(meta({ id: "CreatedApiKey" }));
export type CreatedApiKeyView = z.infer<typeof CreatedApiKey>;

export const KeyList = z
  .object({ data: z.array(ApiKey), next_cursor: z.nullable(z.string()) })
  .apply(meta({ id: "KeyList" }));
export type KeyListView = z.infer<typeof KeyList>;

export const WhoAmI = z
  .object({
    principal: z.enum(["user", "api_key"]),
    owner_id: z.string(),
    owner_type: z.enum(["user", "workspace"]),
    key_id: z.optional(KeyId),
    org_id: z.optional(z.nullable(z.string())),
    scopes: z.optional(z.array(z.string())),
    enabled: z.optional(z.boolean()),
  })
  .apply(meta({ id: "WhoAmI" }));
export type WhoAmIView = z.infer<typeof WhoAmI>;

export const VerifyOptions = z.strictObject({
  scope: described(z.optional(Scope), "A scope the key must hold."),
  resource: described(z.optional(ResourceId), "A resource id the key must be allowed."),
  ip: described(
    z.optional(
      z.string().check(
        z.maxLength(64),
        z.refine((ip) => parseAddress(ip) !== null, "Must be an IPv4 or IPv6 address"),
      ),
    ),
    "The client's address. A key with an allow-list fails with IP_NOT_ALLOWED without it.",
  ),
  cost: VerifyCost,
});
export type VerifyChecks = z.output<typeof VerifyOptions>;

export const VerifyRequest = z
  .extend(VerifyOptions, { key: described(z.string(), "The API key to check.") })
  .apply(meta({ id: "VerifyRequest" }));

const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "INSUFFICIENT_SCOPE",
  "RESOURCE_NOT_ALLOWED",
  "DISABLED",
  "IP_NOT_ALLOWED",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];
/**
 * Codes for a key that is dead, unknown or unusable (disabled, or used from an address outside its
 * allow-list): the answer says nothing else about it, so a stolen key used from elsewhere learns nothing.
 */
const DEAD_KEY_CODES = [
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "IP_NOT_ALLOWED",
] as const satisfies readonly VerifyCode[];
export type DeadKeyCode = (typeof DEAD_KEY_CODES)[number];
/** Codes for a live key (valid, or refused for this request only): the answer carries its details. */
const LIVE_KEY_CODES = [
  "VALID",
  "INSUFFICIENT_SCOPE",
  "RESOURCE_NOT_ALLOWED",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const satisfies readonly VerifyCode[];
export type LiveKeyCode = (typeof LIVE_KEY_CODES)[number];

const VerifyRefusal = z
  .object({
    valid: z.literal(false),
    code: z.enum(DEAD_KEY_CODES),
    key_id: described(z.nullable(KeyId), "The key's id when it exists (REVOKED, EXPIRED, DISABLED, IP_NOT_ALLOWED)."),
  })
  .apply(meta({ id: "VerifyRefusal", description: "A dead or unknown key: nothing about it but its id." }));

const VerifyVerdict = z
  .object({
    valid: z.boolean(),
    code: z.enum(LIVE_KEY_CODES),
    key_id: KeyId,
    owner: z.object({ type: z.enum(["user", "workspace"]), id: z.string() }),
    scopes: z.array(z.string()),
    resources: z.nullable(z.array(z.string())),
    expires_at: z.nullable(Timestamp),
    enabled: described(z.boolean(), "Always true here: a disabled key is refused with DISABLED."),
    ...verdictUsageFields,
  })
  .apply(
    meta({
      id: "VerifyVerdict",
      description: "A live key: VALID, or refused for this request only, with the details the caller needs.",
    }),
  );
/** The verdict on a live key (its details included). */
export type VerifyVerdictView = z.infer<typeof VerifyVerdict>;

export const VerifyResult = z.union([VerifyRefusal, VerifyVerdict]).apply(meta({ id: "VerifyResult" }));
export type VerifyResultView = z.infer<typeof VerifyResult>;

export const AUDIT_ACTIONS = ["created", "imported", "updated", "disabled", "enabled", "rotated", "revoked"] as const;

export const AuditEvent = z
  .object({
    id: described(KeyId, "The event's id."),
    key_id: KeyId,
    action: z.enum(AUDIT_ACTIONS),
    actor: described(z.string(), "`user:<sub>`, `key:<id>` or `service`."),
    at: Timestamp,
    changes: described(
      z.record(z.string(), z.object({ old: z.unknown(), new: z.unknown() })),
      "Each changed field with its old and new value.",
    ),
    ip: described(z.nullable(z.string()), "The caller's address (CF-Connecting-IP), when over HTTP."),
    user_agent: z.nullable(z.string()),
  })
  .apply(meta({ id: "AuditEvent" }));
export type AuditEventView = z.infer<typeof AuditEvent>;

export const EventList = z
  .object({ data: z.array(AuditEvent), next_cursor: z.nullable(z.string()) })
  .apply(meta({ id: "EventList" }));
export type EventListView = z.infer<typeof EventList>;

const eventQueryFields = {
  cursor: pageCursor(),
  action: described(z.optional(z.enum(AUDIT_ACTIONS)), "Only events of this action."),
  since: described(z.optional(Timestamp), "Only events at or after this time."),
  until: described(z.optional(Timestamp), "Only events before this time."),
};

/** Audit log options as a query string (HTTP). */
export const ListEventsQuery = z
  .strictObject({ limit: pageLimit(z.coerce.number()), ...eventQueryFields })
  .apply(meta({ id: "ListEventsQuery" }));
export type ListEventsInput = z.output<typeof ListEventsQuery>;

/** The same options as typed values (RPC). */
export const ListEventsOptions = z.strictObject({ limit: pageLimit(z.number()), ...eventQueryFields });

const problemTable = PROBLEM_CODES.map(
  (code) => `| \`${code}\` | ${PROBLEMS[code].status} | ${PROBLEMS[code].description} |`,
).join("\n");

export const Problem = z
  .object({
    type: z.string().apply(
      meta({
        format: "uri",
        description: "A stable URI for the kind of problem: `https://latchkey.dev/problems/<code with dashes>`.",
        example: problemType("key_revoked"),
      }),
    ),
    title: described(z.string(), "A short summary of the kind, for people."),
    status: described(z.number().check(z.int()), "The HTTP status, as on the response."),
    detail: described(z.string(), "What went wrong with this request, for people."),
    code: described(
      z.enum(PROBLEM_CODES),
      `The kind of problem, for programs:\n\n| code | status | meaning |\n| --- | --- | --- |\n${problemTable}`,
    ),
    errors: described(
      z.optional(z.record(z.string(), z.array(z.string()))),
      "Each invalid field, by path, with its messages.",
    ),
    exceeded: described(
      z.optional(z.string()),
      "403 only: what the request asked beyond the caller's powers (`scopes`, `resources`, ...).",
    ),
    key_id: described(z.optional(z.uuid()), "`idempotent_replay` only: the key the first request created."),
    key_ids: described(
      z.optional(z.array(z.uuid())),
      "`conflict` of a key's lineage only: the keys in the way (stronger keys of its lineage, or a rotated-away key's replacement).",
    ),
    limit: described(
      z.optional(z.enum(["MAX_KEYS_PER_OWNER", "KEY_CREATION_LIMITER"])),
      "`quota_exceeded` and `creation_rate_limited`: the limit that refused the request.",
    ),
    checks: described(
      z.optional(z.record(z.string(), z.string())),
      "`not_ready` only: each dependency checked, `ok` or what is wrong.",
    ),
    // `key_rate_limited` and `key_usage_exceeded`: the key's limits as a verdict would show them.
    ...verdictUsageFields,
  })
  .apply(meta({ id: "Problem", description: "An RFC 9457 problem document." }));

export const Readiness = z
  .object({
    status: z.literal("ready"),
    checks: described(z.record(z.string(), z.literal("ok")), "Each dependency checked."),
  })
  .apply(meta({ id: "Readiness" }));

/** The Idempotency-Key request header (POST /v1/keys): any client-chosen string, e.g. a UUID. */
export const IdempotencyHeaders = z.object({
  "Idempotency-Key": z
    .optional(
      z.string().check(z.regex(/^[\x21-\x7e]{1,255}$/, "Must be 1 to 255 visible ASCII characters (no spaces)")),
    )
    .apply(
      meta({
        description:
          "Makes a retry safe: the same caller sending the same key and body within 24 hours creates nothing and gets 409 `idempotent_replay` naming the key created first; the same key with another body gets 422 `idempotency_key_reused`. Use a new UUID per intended key.",
        example: "5f0c8e1e-2b7d-4a51-9d38-0f5d8f1f6a3c",
      }),
    ),
});

export const Health = z.object({ status: z.literal("ok") }).apply(meta({ id: "Health" }));

export const OpenApiDocument = described(
  z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) }),
  "An OpenAPI 3.1 document (this one).",
);

/** `{ "name": ["Required"], "scopes.0": ["..."] }` from a zod error. */
export function fieldErrors(error: z.core.$ZodError): Record<string, string[]> {
  // No prototype: a field named "__proto__" or "constructor" must not resolve to Object.prototype's.
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  const add = (path: PropertyKey[], message: string) => {
    const field = path.length ? path.map(String).join(".") : "body";
    (out[field] ??= []).push(message);
  };
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) add([...issue.path, key], "Unknown field");
    } else {
      add(issue.path, issue.message);
    }
  }
  return out;
}

/**
 * The path of the first "__proto__" key in a parsed input (a JSON body, an RPC argument), or null.
 * JSON.parse and structured clone make it an own key, which any object copy (zod's included) silently
 * drops: refuse it rather than store something other than what was sent. Iterative, as bodies may
 * nest thousands of levels deep.
 */
export function reservedKeyPath(value: unknown): string | null {
  const pending: [unknown, string][] = [[value, ""]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [node, path] = next;
    if (typeof node !== "object" || node === null) continue;
    for (const key of Object.keys(node)) {
      const at = path ? `${path}.${key}` : key;
      if (key === "__proto__") return at;
      pending.push([(node as Record<string, unknown>)[key], at]);
    }
  }
  return null;
}

/** How an imported key is sent: by hash only. A key in any form fails this pattern, so it is never stored. */
const KeyHash = described(
  z
    .string()
    .check(
      z.regex(/^[0-9a-f]{64}$/, "Must be the key's SHA-256 as 64 lowercase hex characters; never send the key itself"),
    ),
  "SHA-256 (hex) of the key as clients send it; for Sanctum tokens, of the part after `|`.",
);

export const ImportKeyItem = z
  .extend(
    z.pick(CreateKeyRequest, {
      name: true,
      metadata: true,
      scopes: true,
      resources: true,
      owner: true,
    }),
    {
      hash: KeyHash,
      start: described(
        z.optional(
          z.string().check(
            z.minLength(1),
            z.maxLength(12, "Must be at most 12 characters (a display hint, never the key)"),
            z.refine((start) => !CONTROL_CHARS.test(start) && !LONE_SURROGATE.test(start), "Must be printable Unicode"),
          ),
        ),
        "The key's first characters, for display (e.g. `sk_live_ab`).",
      ),
      expires_at: z.optional(z.nullable(Timestamp)),
      created_at: described(
        z.optional(Timestamp.check(z.refine((t) => Date.parse(t) <= Date.now() + 60_000, "Must not be in the future"))),
        "When the key was first issued (default: now).",
      ),
      format: described(
        z.optional(z.enum(["sanctum", "opaque"])),
        "`opaque` (default): clients send `<prefix><secret>`, hashed whole. `sanctum`: Laravel Sanctum's `<id>|<secret>`, hashed as the secret part (as Laravel stores it).",
      ),
    },
  )
  .apply(meta({ id: "ImportKeyItem" }));
export type ImportKeyInput = z.output<typeof ImportKeyItem>;

export const ImportKeysRequest = z
  .strictObject({
    keys: z
      .array(ImportKeyItem)
      .check(z.minLength(1, "Must hold at least 1 key"), z.maxLength(100, "Must hold at most 100 keys")),
  })
  .apply(meta({ id: "ImportKeysRequest" }));
export type ImportKeysInput = z.output<typeof ImportKeysRequest>;

export const ImportResult = z
  .object({
    imported: z.number().check(z.int()),
    conflicts: z.number().check(z.int()),
    results: z.array(
      z.object({
        hash: described(z.string(), "The first 12 hex characters of the item's hash."),
        status: z.enum(["imported", "conflict"]),
        id: z.nullable(KeyId),
      }),
    ),
  })
  .apply(meta({ id: "ImportResult", description: "One result per item, in input order." }));
export type ImportResultView = z.infer<typeof ImportResult>;
const DevSubject = z
  .string()
  .check(
    z.minLength(1, "Must not be empty"),
    z.maxLength(255),
    z.regex(WELL_FORMED_ID, "Must not contain control characters"),
  );

/** POST /ui/dev-token (local development only; not part of the API document). */
export const DevTokenRequest = z.strictObject({ sub: DevSubject, org: z.optional(DevSubject) });
