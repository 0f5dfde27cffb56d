/**
 * latchkey over service bindings, for other Workers: no network hop and no HTTP. These methods call
 * the same service as the HTTP routes, with inputs checked by the same schemas.
 *
 * - `KeyVerifier` only verifies: bind it to Workers that guard their routes with keys.
 * - `KeyService` also creates, reads, lists, updates, rotates and revokes keys, reads the audit log,
 *   sets per-customer limits and manages webhook endpoints, on behalf of any owner: bind it only to
 *   trusted Workers that manage keys for their users.
 *
 * Errors cross the binding as Error objects whose message starts with a code in brackets, e.g.
 * `[not_found] No such key` or `[invalid] input: name: Required`, so a caller can branch on them
 * (@latchkey/client's RPC_ERROR_CODES lists the codes, parseRpcError reads them). The code is the one
 * errors/classify.ts gives every error; an unexpected error is `[internal]` and says nothing more.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import * as z from "zod/mini";
import { createContext } from "./context";
import type { Env } from "./env";
import type { Actor, Owner } from "./model";
import type {
  ApiKeyView,
  CreatedApiKeyView,
  EventListView,
  KeyListView,
  KeyService as KeyServiceContract,
  KeyVerifier as KeyVerifierContract,
} from "@latchkey/client/rpc";
import type {
  CreatedWebhook,
  ListDeliveriesOptions,
  Webhook,
  WebhookDelivery,
  WebhookDeliveryList,
  WebhookList,
} from "@latchkey/client/types";
import {
  CreateKeyRequest,
  CreateWebhookRequest,
  ListDeliveriesQuery,
  ListEventsOptions as ListEventsOptionsSchema,
  CreditsRequest,
  type CreditsResultView,
  OwnerLimitsRequest,
  type OwnerLimitsView,
  type OwnerUsageReportView,
  UsageQuery,
  ImportKeysRequest,
  type ImportResultView,
  LeakReportRequest,
  type LeakReportResultView,
  ListKeysOptions as ListKeysOptionsSchema,
  RevokeKeyOptions as RevokeKeyOptionsSchema,
  RotateKeyRequest,
  RotateWebhookSecretRequest,
  UpdateKeyRequest,
  UpdateWebhookRequest,
  VerifyOptions,
  type VerifyResultView,
  type VerifyVerdictView,
  WELL_FORMED_ID,
  parseInput,
  reservedKeyPath,
} from "./schemas";
import { report } from "./errors/classify";
import type { FieldIssue } from "./problems";
import { ValidationError } from "./service/errors";

export const OwnerInput = z.strictObject({
  type: z.enum(["user", "workspace"]),
  id: z.string().check(z.minLength(1), z.maxLength(255), z.regex(WELL_FORMED_ID, "Must have no control characters")),
});

/** RPC carries values JSON cannot (Date, Map, BigInt, undefined, NaN): metadata must be JSON, as over HTTP. */
const JsonMetadata = z.looseObject({ metadata: z.optional(z.nullable(z.record(z.string(), z.json()))) });

export type { ImportResultView, Owner, VerifyResultView, VerifyVerdictView };

/**
 * The views as a binding types them, from the client package, which is what callers import (the
 * package's types are checked against the schemas by test/clients/client-types.test.ts): metadata typed as
 * JSON-ish values, since `unknown` would make the binding's results `never`.
 */
export type {
  ApiKeyView,
  AuditEventRpcView,
  CreatedApiKeyView,
  EventListView,
  KeyListView,
  MetadataValue,
} from "@latchkey/client/rpc";
export type CreateKeyOptions = z.input<typeof CreateKeyRequest>;
export type UpdateKeyOptions = z.input<typeof UpdateKeyRequest>;
export type RotateKeyOptions = z.input<typeof RotateKeyRequest>;
/** `limit` typed as the number it is (zod's input type of a defaulted, refined number is `unknown`). */
export type ListEventsOptions = {
  [K in keyof EventOptionsInput]: EventOptionsInput[K];
};
type EventOptionsInput = Omit<z.input<typeof ListEventsOptionsSchema>, "limit"> & { limit?: number };
export type ListKeysOptions = z.input<typeof ListKeysOptionsSchema>;
export type VerifyKeyOptions = z.input<typeof VerifyOptions>;
export type ImportKeysOptions = z.input<typeof ImportKeysRequest>;
export type RevokeKeyOptions = z.input<typeof RevokeKeyOptionsSchema>;
export type CreditsOptions = z.input<typeof CreditsRequest>;
export type LeakReportOptions = z.input<typeof LeakReportRequest>;
export type OwnerLimitsOptions = z.input<typeof OwnerLimitsRequest>;
export type OwnerUsageOptions = z.input<typeof UsageQuery>;
export type CreateWebhookOptions = z.input<typeof CreateWebhookRequest>;
export type UpdateWebhookOptions = z.input<typeof UpdateWebhookRequest>;
export type RotateWebhookSecretOptions = z.input<typeof RotateWebhookSecretRequest>;
export type { ListDeliveriesOptions };

/** Refused input of one argument: `[invalid] input: name: Required`. */
class ArgumentError extends ValidationError {
  constructor(argument: string, issues: readonly FieldIssue[]) {
    super(issues);
    this.message = `${argument}: ${this.message}`;
  }
}

/** Parses an argument, or throws `[invalid] <argument>: <field>: <messages>`. */
function check<S extends z.ZodMiniType>(schema: S, value: unknown, argument: string): z.output<S> {
  const result = parseInput(schema, value);
  if (!result.success) throw new ArgumentError(argument, result.issues);
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
  if (reserved !== null)
    throw new ArgumentError("input", [
      { field: reserved, kind: "reserved", message: 'The key "__proto__" is reserved' },
    ]);
  return check(schema, input, "input");
}

function serviceActor(owner: Owner): Extract<Actor, { kind: "service" }> {
  return { kind: "service", owner: check(OwnerInput, owner, "owner") };
}

/** The Error an RPC caller receives for `error`: its code in brackets, then its message. */
export function rpcError(error: unknown): Error {
  const { rpc, message } = report(error);
  return new Error(`[${rpc}] ${message}`);
}

/** Runs a call; any error becomes an RPC error (RPC carries only the message). */
async function rpcErrors<T>(run: () => Promise<T> | T): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw rpcError(error);
  }
}

function verifyWith(env: Env, ctx: ExecutionContext, key: unknown, options: unknown): Promise<VerifyResultView> {
  return rpcErrors(() => {
    const parsed = check(VerifyOptions, options ?? {}, "options");
    if (typeof key !== "string")
      throw new ValidationError([{ field: "key", kind: "type", message: "Must be a string" }]);
    return createContext(env, ctx).keys.verify(key, parsed);
  });
}

/** Verification only: the entrypoint for Workers that guard their routes with keys. */
export class KeyVerifier extends WorkerEntrypoint<Env> implements KeyVerifierContract {
  /** The same verdict as POST /v1/verify. */
  async verify(key: string, options: VerifyKeyOptions = {}): Promise<VerifyResultView> {
    return verifyWith(this.env, this.ctx, key, options);
  }
}

/** Verification and management of any owner's keys: for trusted Workers only. */
export class KeyService extends WorkerEntrypoint<Env> implements KeyServiceContract {
  /** The same verdict as POST /v1/verify. */
  async verify(key: string, options: VerifyKeyOptions = {}): Promise<VerifyResultView> {
    return verifyWith(this.env, this.ctx, key, options);
  }

  async create(owner: Owner, input: CreateKeyOptions): Promise<CreatedApiKeyView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const body = checkJsonInput(CreateKeyRequest, input);
      return this.#keys().create(actor, body);
    }) as Promise<CreatedApiKeyView>;
  }

  /** POST /v1/keys/import for `owner`: existing keys registered by hash (docs/migrating.md). */
  async import(owner: Owner, input: ImportKeysOptions): Promise<ImportResultView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const body = checkJsonInput(ImportKeysRequest, input, z.looseObject({ keys: z.array(JsonMetadata) }));
      return this.#keys().import(actor, body);
    });
  }

  /** The same as PATCH /v1/keys/{id}: fields left out are unchanged, null clears. */
  async update(owner: Owner, id: string, input: UpdateKeyOptions): Promise<ApiKeyView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const body = checkJsonInput(UpdateKeyRequest, input);
      return this.#keys().update(actor, String(id), body);
    }) as Promise<ApiKeyView>;
  }

  /** The same as POST /v1/keys/{id}/rotate: the replacement key, shown once. */
  async rotate(owner: Owner, id: string, options: RotateKeyOptions = {}): Promise<CreatedApiKeyView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(RotateKeyRequest, options, "options");
      return this.#keys().rotate(actor, String(id), parsed);
    }) as Promise<CreatedApiKeyView>;
  }

  /** One key's audit events, newest first. */
  async keyEvents(owner: Owner, id: string, options: ListEventsOptions = {}): Promise<EventListView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(ListEventsOptionsSchema, options, "options");
      return this.#keys().keyEvents(actor, String(id), parsed);
    }) as Promise<EventListView>;
  }

  /** The owner's audit events, newest first. */
  async listEvents(owner: Owner, options: ListEventsOptions = {}): Promise<EventListView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(ListEventsOptionsSchema, options, "options");
      return this.#keys().listEvents(actor, parsed);
    }) as Promise<EventListView>;
  }

  async get(owner: Owner, id: string): Promise<ApiKeyView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#keys().get(actor, String(id));
    }) as Promise<ApiKeyView>;
  }

  async list(owner: Owner, options: ListKeysOptions = {}): Promise<KeyListView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(ListKeysOptionsSchema, options, "options");
      return this.#keys().list(actor, parsed);
    }) as Promise<KeyListView>;
  }

  /** POST /v1/keys/{id}/credits for `owner`: the balance afterwards. */
  async credits(owner: Owner, id: string, input: CreditsOptions): Promise<CreditsResultView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const body = check(CreditsRequest, input, "input");
      return this.#keys().adjustCredits(actor, String(id), body);
    });
  }

  /** Revokes the key; with `{ cascade: true }` also every key descending from it, in one write. */
  async revoke(owner: Owner, id: string, options: RevokeKeyOptions = {}): Promise<void> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(RevokeKeyOptionsSchema, options ?? {}, "options");
      return this.#keys().revoke(actor, String(id), parsed);
    });
  }

  /**
   * POST /v1/leaks for trusted Workers (scanners): each key of this deployment among `keys` is revoked
   * (or disabled: LEAK_ACTION) with a `leaked` audit event by `service`, whatever its owner.
   */
  async reportLeaks(input: LeakReportOptions): Promise<LeakReportResultView> {
    return rpcErrors(() => {
      const body = check(LeakReportRequest, input, "input");
      return createContext(this.env, this.ctx).leaks.reportKeys({ kind: "service" }, body);
    });
  }

  /** GET /v1/owners/{type}/{id}/limits for `owner`: its per-customer limits with the live balance. */
  async ownerLimits(owner: Owner): Promise<OwnerLimitsView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#owners().get(actor, actor.owner);
    });
  }

  /** PUT /v1/owners/{type}/{id}/limits for `owner` (`{ ratelimits?, credits? }`; null clears one). */
  async setOwnerLimits(owner: Owner, input: OwnerLimitsOptions): Promise<OwnerLimitsView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const body = check(OwnerLimitsRequest, input, "input");
      return this.#owners().put(actor, actor.owner, body);
    });
  }

  /** POST /v1/owners/{type}/{id}/credits for `owner`: the shared balance afterwards. */
  async ownerCredits(owner: Owner, input: CreditsOptions): Promise<CreditsResultView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const body = check(CreditsRequest, input, "input");
      return this.#owners().adjustCredits(actor, actor.owner, body);
    });
  }

  /** GET /v1/owners/{type}/{id}/usage for `owner`. */
  async ownerUsage(owner: Owner, query: OwnerUsageOptions = {}): Promise<OwnerUsageReportView> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(UsageQuery, query ?? {}, "query");
      return this.#owners().usage(actor, actor.owner, parsed);
    });
  }

  /**
   * POST /v1/webhooks for `owner`: an endpoint receiving that owner's keys' events (and its credit
   * warnings), with its signing secret shown only in this answer (docs/webhooks.md).
   */
  async createWebhook(owner: Owner, input: CreateWebhookOptions): Promise<CreatedWebhook> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#webhooks().create(actor, check(CreateWebhookRequest, input, "input"));
    });
  }

  /** GET /v1/webhooks for `owner`: its endpoints, newest first. */
  async listWebhooks(owner: Owner): Promise<WebhookList> {
    return rpcErrors(() => this.#webhooks().list(serviceActor(owner)));
  }

  /** GET /v1/webhooks/{id} for `owner` (another owner's endpoint: `[not_found]`). */
  async getWebhook(owner: Owner, id: string): Promise<Webhook> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#webhooks().get(actor, String(id));
    });
  }

  /** PATCH /v1/webhooks/{id} for `owner`: fields left out are unchanged. */
  async updateWebhook(owner: Owner, id: string, input: UpdateWebhookOptions): Promise<Webhook> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#webhooks().update(actor, String(id), check(UpdateWebhookRequest, input, "input"));
    });
  }

  /** DELETE /v1/webhooks/{id} for `owner`: the endpoint and its delivery log; queued deliveries are dropped. */
  async deleteWebhook(owner: Owner, id: string): Promise<void> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#webhooks().delete(actor, String(id));
    });
  }

  /** POST /v1/webhooks/{id}/rotate-secret for `owner`: the new secret, shown only in this answer. */
  async rotateWebhookSecret(
    owner: Owner,
    id: string,
    options: RotateWebhookSecretOptions = {},
  ): Promise<CreatedWebhook> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(RotateWebhookSecretRequest, options ?? {}, "options");
      return this.#webhooks().rotateSecret(actor, String(id), parsed);
    });
  }

  /** GET /v1/webhooks/{id}/deliveries for `owner`: the delivery log, newest first. */
  async webhookDeliveries(owner: Owner, id: string, options: ListDeliveriesOptions = {}): Promise<WebhookDeliveryList> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      const parsed = check(ListDeliveriesQuery, options ?? {}, "options");
      return this.#webhooks().deliveries(actor, String(id), parsed);
    });
  }

  /** POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry for `owner`: one more attempt now. */
  async retryWebhookDelivery(owner: Owner, id: string, deliveryId: string): Promise<WebhookDelivery> {
    return rpcErrors(() => {
      const actor = serviceActor(owner);
      return this.#webhooks().retry(actor, String(id), String(deliveryId));
    });
  }

  #owners() {
    return createContext(this.env, this.ctx).owners;
  }

  #webhooks() {
    return createContext(this.env, this.ctx).webhooks;
  }

  /** Truly private (#): RPC exposes every public method of an entrypoint, and TypeScript's `private` too. */
  #keys() {
    return createContext(this.env, this.ctx).keys;
  }
}
