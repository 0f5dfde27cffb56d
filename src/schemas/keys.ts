/** Keys: create, update, rotate, list, revoke, import, the Idempotency-Key header and the key views. */
import * as z from "zod/mini";
import { LEGACY_FORMATS } from "../keys/legacy";
import {
  AllowedIps,
  BooleanQuery,
  CONTROL_CHARS,
  FutureTimestamp,
  KeyId,
  KeyName,
  LONE_SURROGATE,
  Metadata,
  OwnerIdField,
  PAGE_LIMIT_MESSAGE,
  ResourceId,
  Scope,
  Timestamp,
  WELL_FORMED_ID,
  described,
  meta,
  pageCursor,
  pageLimit,
  uniqueArray,
} from "./common";
import { Credits, CreditsView, RateLimits } from "./usage";

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
          "`user` (default): a personal key. `workspace`: a key of the caller's workspace (the JWT's org claim). Required with a root key.",
      }),
    ),
    owner_id: z.optional(OwnerIdField).apply(
      meta({
        description:
          "The owner's id (e.g. your customer's id). Required with a root key, which creates keys for any owner its patterns cover; anyone else may name only the owner they act for (another: 403).",
        example: "cust_42",
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
      .apply(meta({ description: "Only personal or workspace keys; required with a root key." })),
    owner_id: z.optional(OwnerIdField).apply(
      meta({
        description:
          "Only this owner's keys; required with a root key (anyone else may name only an owner they act for).",
      }),
    ),
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
    created_by: described(z.string(), "`user:<sub>`, `key:<id>`, `root:<id>` (a root key) or `service`."),
    created_at: Timestamp,
    expires_at: z.nullable(Timestamp),
    revoked_at: z.nullable(Timestamp),
    last_used_at: described(z.nullable(Timestamp), "Written within about 15 s of a use, at most once a minute."),
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
/**
 * How an imported key is sent: by hash only. A key in any accepted form fails this pattern (no shape
 * holds `$`, and 64 hex is a hash), so it is never stored; which kind of hash the format needs is
 * checked by the service (service/import-format.ts).
 */
const KeyHash = described(
  z
    .string()
    .check(
      z.regex(
        /^(?:[0-9a-f]{64}|\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53})$/,
        "Must be the key's SHA-256 or HMAC-SHA256 as 64 lowercase hex characters, or its bcrypt hash; never send the key itself",
      ),
    ),
  "The key's digest as your table holds it: the SHA-256 (hex) of the key as clients send it (for Sanctum tokens, of the part after `|`); for `hmac-sha256`, its HMAC-SHA256 under LEGACY_HMAC_PEPPER (hex); for `bcrypt`, the bcrypt hash of the secret after `<lookup_id>.`.",
);

export const ImportKeyItem = z
  .extend(
    z.pick(CreateKeyRequest, {
      name: true,
      metadata: true,
      scopes: true,
      resources: true,
      owner: true,
      owner_id: true,
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
      last_used_at: described(
        z.optional(Timestamp.check(z.refine((t) => Date.parse(t) <= Date.now() + 60_000, "Must not be in the future"))),
        "When the key was last used in the old system (default: never).",
      ),
      format: described(
        z.optional(z.enum(LEGACY_FORMATS)),
        "How clients send the key and how `hash` was made (LEGACY_KEY_FORMATS enables each; docs/migrating.md). `sanctum`: `<id>|<secret>`, SHA-256 of the secret. `opaque`: `<prefix><secret>` with an enabled prefix, SHA-256 of the whole key. `hex32`, `hex64`, `base64url43`: an unprefixed token of exactly that shape, SHA-256 of it. `hmac-sha256`: a token in a shape enabled as `hmac-sha256:<shape>`, HMAC-SHA256 of it under LEGACY_HMAC_PEPPER. `bcrypt`: `<lookup_id>.<secret>`, bcrypt of the secret (with `lookup_id`). Required when more than one format is enabled; otherwise the enabled one.",
      ),
      lookup_id: described(
        z.optional(z.string()),
        "bcrypt keys only: the id part of the token `<lookup_id>.<secret>` (1-64 letters, digits, _ or -), by which the key is found.",
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
