/**
 * The building blocks the resources share: OpenAPI metadata (`meta`, `described`), timestamps, ids,
 * scopes, resources, names, metadata, IP allow-lists, query-string booleans and paging; the health
 * and document shapes; the dev-token request of the local keys page.
 */
import * as z from "zod/mini";
import { parseRange } from "../keys/ip";
import { SCOPE_PATTERN } from "../keys/scopes";

const METADATA_MAX_BYTES = 2048;
const utf8 = new TextEncoder();
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
/**
 * Owner ids (JWT subjects, workspace ids, RPC owners): no control characters, no invisible format or
 * bidi controls (\p{Cf}: U+200B, U+202E, U+2066-2069, U+FEFF...), which make one id look like another,
 * no lone surrogates.
 */
export const WELL_FORMED_ID = /^[^\p{Cc}\p{Cf}\p{Cs}]+$/u;
/** An owner's id as a request names it (`owner_id`): what a JWT's subject or org claim may be. */
export const OwnerIdField = z
  .string()
  .check(
    z.minLength(1, "Must not be empty"),
    z.maxLength(255, "Must be at most 255 characters"),
    z.regex(WELL_FORMED_ID, "Must have no control or invisible format characters"),
  );

/** Unicode format characters: zero-width and bidi controls that make text display as what it is not. */
const FORMAT_CHARS = /\p{Cf}/u;
/** A UTF-16 surrogate not part of a pair: not Unicode, and D1 would store it as U+FFFD. */
export const LONE_SURROGATE = /\p{Cs}/u;

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

export const Timestamp = z.iso.datetime({ offset: true }).apply(
  meta({
    description: "An RFC 3339 date-time.",
    example: "2027-01-31T12:00:00Z",
  }),
);

export const KeyId = z.uuid({ version: "v4" }).apply(meta({ description: "The key's id (UUID v4)." }));

export const Scope = z
  .string()
  .check(z.maxLength(100), z.regex(SCOPE_PATTERN, "Must be lowercase resource:action, resource:* or *"))
  .apply(meta({ id: "Scope", example: "models:invoke" }));

export const ResourceId = z
  .string()
  .check(
    z.minLength(1),
    z.maxLength(128),
    z.regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, "Must be letters, digits and . _ : / @ -"),
  )
  .apply(meta({ id: "ResourceId", example: "model_abc123" }));

export const KeyName = z.string().check(
  z.trim(),
  z.minLength(1, "Must not be empty"),
  z.maxLength(100, "Must be at most 100 characters"),
  z.refine((name) => !CONTROL_CHARS.test(name), "Must not contain control characters"),
  z.refine((name) => !FORMAT_CHARS.test(name), "Must not contain invisible format or bidi control characters"),
  z.refine((name) => !LONE_SURROGATE.test(name), "Must be valid Unicode (no lone surrogates)"),
);

export const Metadata = z
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
export const uniqueArray = <T extends z.core.SomeType>(item: T, max: number, tooFew?: string) =>
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

export const AllowedIps = z
  .nullable(uniqueArray(IpRange, 100, "Must name at least one address or range (null: any address)"))
  .apply(
    meta({
      description:
        "IPv4/IPv6 addresses and CIDR ranges the key may be used from; null: any. Checked against CF-Connecting-IP on latchkey's routes and against `ip` in verification.",
    }),
  );

export const FutureTimestamp = Timestamp.check(z.refine((t) => Date.parse(t) > Date.now(), "Must be in the future"));
/** A query-string boolean: documented as a boolean (what generated clients send), `1`/`0` also taken. */
export const BooleanQuery = z
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

export const PAGE_LIMIT_MESSAGE = "Must be a whole number between 1 and 100";
export const pageLimit = (number: z.ZodMiniNumber<unknown>) =>
  z._default(
    number.check(
      z.int(PAGE_LIMIT_MESSAGE),
      z.gte(1, PAGE_LIMIT_MESSAGE),
      z.lte(100, PAGE_LIMIT_MESSAGE),
    ) as z.ZodMiniNumber<number>,
    20,
  );

export const pageCursor = () =>
  z.optional(z.string().check(z.maxLength(200))).apply(meta({ description: "next_cursor from the previous page." }));

export const Health = z.object({ status: z.literal("ok") }).apply(meta({ id: "Health" }));

export const OpenApiDocument = described(
  z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) }),
  "An OpenAPI 3.1 document (this one).",
);
const DevSubject = z
  .string()
  .check(
    z.minLength(1, "Must not be empty"),
    z.maxLength(255),
    z.regex(WELL_FORMED_ID, "Must not contain control characters"),
  );

/** POST /ui/dev-token (local development only; not part of the API document). */
export const DevTokenRequest = z.strictObject({ sub: DevSubject, org: z.optional(DevSubject) });
