/**
 * latchkey over service bindings, for other Workers: no network hop and no HTTP. These methods call
 * the same service as the HTTP routes, with inputs checked by the same schemas.
 *
 * - `KeyVerifier` only verifies: bind it to Workers that guard their routes with keys.
 * - `KeyService` also creates, reads, lists, updates, rotates and revokes keys, and reads the audit
 *   log, on behalf of any owner: bind it only to trusted Workers that manage keys for their users.
 *
 * Errors cross the binding as Error objects whose message starts with a code in brackets, e.g.
 * `[not_found] No such key` or `[invalid] input: name: Required`, so a caller can branch on them:
 * also `[forbidden]`, `[quota_exceeded]`, `[rate_limited]` and `[unavailable]` (storage down, or
 * this isolate too long without a feed sync to vouch for a key: retry shortly).
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import * as z from "zod/mini";
import { createContext } from "./context";
import type { Env } from "./env";
import type { Actor, Owner } from "./model";
import {
  type ApiKeyView as ApiKeyJson,
  type AuditEventView,
  CreateKeyRequest,
  ListEventsOptions as ListEventsOptionsSchema,
  CreditsRequest,
  type CreditsResultView,
  ImportKeysRequest,
  type ImportResultView,
  ListKeysOptions as ListKeysOptionsSchema,
  RevokeKeyOptions as RevokeKeyOptionsSchema,
  RotateKeyRequest,
  UpdateKeyRequest,
  VerifyOptions,
  type VerifyResultView,
  type VerifyVerdictView,
  WELL_FORMED_ID,
  fieldErrors,
  reservedKeyPath,
} from "./schemas";
import {
  ConflictError,
  ForbiddenError,
  LimitExceededError,
  LineageConflictError,
  NotFoundError,
  StorageUnavailableError,
  ValidationError,
} from "./service/errors";

export const OwnerInput = z.strictObject({
  type: z.enum(["user", "workspace"]),
  id: z.string().check(z.minLength(1), z.maxLength(255), z.regex(WELL_FORMED_ID, "Must have no control characters")),
});

/** RPC carries values JSON cannot (Date, Map, BigInt, undefined, NaN): metadata must be JSON, as over HTTP. */
const JsonMetadata = z.looseObject({ metadata: z.optional(z.nullable(z.record(z.string(), z.json()))) });

export type { ImportResultView, Owner, VerifyResultView, VerifyVerdictView };

/**
 * The views as a binding types them. Metadata is JSON, but typed `unknown` (as in schemas.ts) it
 * would make the binding's results `never`, and a recursive JSON type is too deep for RPC's types.
 */
export type MetadataValue = string | number | boolean | null | object;
export type ApiKeyView = Omit<ApiKeyJson, "metadata"> & { metadata: Record<string, MetadataValue> | null };
export type CreatedApiKeyView = ApiKeyView & { key: string };
export interface KeyListView {
  data: ApiKeyView[];
  next_cursor: string | null;
}
export type CreateKeyOptions = z.input<typeof CreateKeyRequest>;
export type UpdateKeyOptions = z.input<typeof UpdateKeyRequest>;
export type RotateKeyOptions = z.input<typeof RotateKeyRequest>;
/** `limit` typed as the number it is (zod's input type of a defaulted, refined number is `unknown`). */
export type ListEventsOptions = {
  [K in keyof EventOptionsInput]: EventOptionsInput[K];
};
type EventOptionsInput = Omit<z.input<typeof ListEventsOptionsSchema>, "limit"> & { limit?: number };
/** An audit event as a binding types it (`changes` values are JSON). */
export type AuditEventRpcView = Omit<AuditEventView, "changes"> & {
  changes: Record<string, { old: MetadataValue; new: MetadataValue }>;
};
export interface EventListView {
  data: AuditEventRpcView[];
  next_cursor: string | null;
}
export type ListKeysOptions = z.input<typeof ListKeysOptionsSchema>;
export type VerifyKeyOptions = z.input<typeof VerifyOptions>;
export type ImportKeysOptions = z.input<typeof ImportKeysRequest>;
export type RevokeKeyOptions = z.input<typeof RevokeKeyOptionsSchema>;
export type CreditsOptions = z.input<typeof CreditsRequest>;

/** Parses an argument, or throws `[invalid] <argument>: <field>: <messages>`. */
function check<S extends z.ZodMiniType>(schema: S, value: unknown, argument: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success)
    throw new Error(`[invalid] ${argument}: ${new ValidationError(fieldErrors(result.error)).message}`);
  return result.data;
}

/**
 * A create, import or update input: JSON metadata (where `json` says), no "__proto__" keys, then the
 * schema.
 */
function checkJsonInput<S extends z.ZodMiniType>(
  schema: S,
  input: unknown,
  json: z.ZodMiniType = JsonMetadata,
): z.output<S> {
  check(json, input, "input");
  const reserved = reservedKeyPath(input);
  if (reserved !== null) throw new Error(`[invalid] input: ${reserved}: The key "__proto__" is reserved`);
  return check(schema, input, "input");
}

function serviceActor(owner: Owner): Actor {
  return { kind: "service", owner: check(OwnerInput, owner, "owner") };
}

/** Service errors become plain Errors with a stable code, as RPC carries only the message. */
async function rpcErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof NotFoundError) throw new Error(`[not_found] ${error.message}`);
    if (error instanceof ValidationError) throw new Error(`[invalid] ${error.message}`);
    if (error instanceof ForbiddenError) throw new Error(`[forbidden] ${error.exceeded}: ${error.message}`);
    if (error instanceof LimitExceededError) {
      const code = error.retryAfterSeconds === null ? "quota_exceeded" : "rate_limited";
      throw new Error(`[${code}] ${error.limit}: ${error.message}`);
    }
    if (error instanceof ConflictError || error instanceof LineageConflictError) {
      throw new Error(`[conflict] ${error.message}`);
    }
    if (error instanceof StorageUnavailableError)
      throw new Error("[unavailable] Storage is unavailable; retry shortly");
    throw error;
  }
}

function verifyWith(env: Env, ctx: ExecutionContext, key: unknown, options: unknown): Promise<VerifyResultView> {
  const parsed = check(VerifyOptions, options ?? {}, "options");
  if (typeof key !== "string") throw new Error("[invalid] key: Must be a string");
  return rpcErrors(() => createContext(env, ctx).keys.verify(key, parsed));
}

/** Verification only: the entrypoint for Workers that guard their routes with keys. */
export class KeyVerifier extends WorkerEntrypoint<Env> {
  /** The same verdict as POST /v1/verify. */
  async verify(key: string, options: VerifyKeyOptions = {}): Promise<VerifyResultView> {
    return verifyWith(this.env, this.ctx, key, options);
  }
}

/** Verification and management of any owner's keys: for trusted Workers only. */
export class KeyService extends WorkerEntrypoint<Env> {
  /** The same verdict as POST /v1/verify. */
  async verify(key: string, options: VerifyKeyOptions = {}): Promise<VerifyResultView> {
    return verifyWith(this.env, this.ctx, key, options);
  }

  async create(owner: Owner, input: CreateKeyOptions): Promise<CreatedApiKeyView> {
    const actor = serviceActor(owner);
    const body = checkJsonInput(CreateKeyRequest, input);
    return rpcErrors(() => this.#keys().create(actor, body)) as Promise<CreatedApiKeyView>;
  }

  /** POST /v1/keys/import for `owner`: existing keys registered by hash (see README). */
  async import(owner: Owner, input: ImportKeysOptions): Promise<ImportResultView> {
    const actor = serviceActor(owner);
    const body = checkJsonInput(ImportKeysRequest, input, z.looseObject({ keys: z.array(JsonMetadata) }));
    return rpcErrors(() => this.#keys().import(actor, body));
  }

  /** The same as PATCH /v1/keys/{id}: fields left out are unchanged, null clears. */
  async update(owner: Owner, id: string, input: UpdateKeyOptions): Promise<ApiKeyView> {
    const actor = serviceActor(owner);
    const body = checkJsonInput(UpdateKeyRequest, input);
    return rpcErrors(() => this.#keys().update(actor, String(id), body)) as Promise<ApiKeyView>;
  }

  /** The same as POST /v1/keys/{id}/rotate: the replacement key, shown once. */
  async rotate(owner: Owner, id: string, options: RotateKeyOptions = {}): Promise<CreatedApiKeyView> {
    const actor = serviceActor(owner);
    const parsed = check(RotateKeyRequest, options, "options");
    return rpcErrors(() => this.#keys().rotate(actor, String(id), parsed)) as Promise<CreatedApiKeyView>;
  }

  /** One key's audit events, newest first. */
  async keyEvents(owner: Owner, id: string, options: ListEventsOptions = {}): Promise<EventListView> {
    const actor = serviceActor(owner);
    const parsed = check(ListEventsOptionsSchema, options, "options");
    return rpcErrors(() => this.#keys().keyEvents(actor, String(id), parsed)) as Promise<EventListView>;
  }

  /** The owner's audit events, newest first. */
  async listEvents(owner: Owner, options: ListEventsOptions = {}): Promise<EventListView> {
    const actor = serviceActor(owner);
    const parsed = check(ListEventsOptionsSchema, options, "options");
    return rpcErrors(() => this.#keys().listEvents(actor, parsed)) as Promise<EventListView>;
  }

  async get(owner: Owner, id: string): Promise<ApiKeyView> {
    const actor = serviceActor(owner);
    return rpcErrors(() => this.#keys().get(actor, String(id))) as Promise<ApiKeyView>;
  }

  async list(owner: Owner, options: ListKeysOptions = {}): Promise<KeyListView> {
    const actor = serviceActor(owner);
    const parsed = check(ListKeysOptionsSchema, options, "options");
    return rpcErrors(() => this.#keys().list(actor, parsed)) as Promise<KeyListView>;
  }

  /** POST /v1/keys/{id}/credits for `owner`: the balance afterwards. */
  async credits(owner: Owner, id: string, input: CreditsOptions): Promise<CreditsResultView> {
    const actor = serviceActor(owner);
    const body = check(CreditsRequest, input, "input");
    return rpcErrors(() => this.#keys().adjustCredits(actor, String(id), body));
  }

  /** Revokes the key; with `{ cascade: true }` also every key descending from it, in one write. */
  async revoke(owner: Owner, id: string, options: RevokeKeyOptions = {}): Promise<void> {
    const actor = serviceActor(owner);
    const parsed = check(RevokeKeyOptionsSchema, options ?? {}, "options");
    return rpcErrors(() => this.#keys().revoke(actor, String(id), parsed));
  }

  /** Truly private (#): RPC exposes every public method of an entrypoint, and TypeScript's `private` too. */
  #keys() {
    return createContext(this.env, this.ctx).keys;
  }
}
