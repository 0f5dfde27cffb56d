/**
 * KeyService: latchkey over a service binding, for trusted Workers. No network hop and no HTTP:
 * these methods call the same service as the HTTP routes, with inputs checked by the same schemas.
 *
 * Errors cross the binding as Error objects whose message starts with a code in brackets, e.g.
 * `[not_found] No such key` or `[invalid] name: Required`, so a caller can branch on them.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { z } from "zod";
import { createContext } from "./context";
import type { Env } from "./env";
import type { Owner } from "./model";
import {
  type ApiKeyView as ApiKeyJson,
  CreateKeyRequest,
  ListKeysQuery,
  VerifyOptions,
  type VerifyResultView,
  fieldErrors,
} from "./schemas";
import { ForbiddenError, NotFoundError, ValidationError } from "./service/errors";
import { StorageUnavailableError } from "./store/store";

export const OwnerInput = z.strictObject({
  type: z.enum(["user", "workspace"]),
  id: z.string().min(1).max(255),
});

/** RPC carries values JSON cannot (Date, Map, BigInt, undefined, NaN): metadata must be JSON, as over HTTP. */
const JsonMetadata = z.looseObject({ metadata: z.record(z.string(), z.json()).nullable().optional() });

export type { Owner, VerifyResultView };

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
export type ListKeysOptions = z.input<typeof ListKeysQuery>;
export type VerifyKeyOptions = z.input<typeof VerifyOptions>;

function check<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const errors = fieldErrors(result.error);
    throw new Error(
      `[invalid] ${what}: ${Object.entries(errors)
        .map(([f, m]) => `${f}: ${m.join("; ")}`)
        .join(", ")}`,
    );
  }
  return result.data;
}

/** Service errors become plain Errors with a stable code, as RPC carries only the message. */
async function rpcErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof NotFoundError) throw new Error(`[not_found] ${error.message}`);
    if (error instanceof ValidationError) throw new Error(`[invalid] ${error.message}`);
    if (error instanceof ForbiddenError) throw new Error(`[forbidden] ${error.exceeded}: ${error.message}`);
    if (error instanceof StorageUnavailableError)
      throw new Error("[unavailable] Storage is unavailable; retry shortly");
    throw error;
  }
}

export class KeyService extends WorkerEntrypoint<Env> {
  private context() {
    return createContext(this.env, this.ctx);
  }

  /** The same verdict as POST /v1/verify. */
  async verify(key: string, options: VerifyKeyOptions = {}): Promise<VerifyResultView> {
    const parsed = check(VerifyOptions, options, "options");
    if (typeof key !== "string") throw new Error("[invalid] key: must be a string");
    return rpcErrors(() => this.context().keys.verify(key, parsed));
  }

  async create(owner: Owner, input: CreateKeyOptions): Promise<CreatedApiKeyView> {
    const actor = { kind: "service", owner: check(OwnerInput, owner, "owner") } as const;
    check(JsonMetadata, input, "input");
    const body = check(CreateKeyRequest, input, "input");
    return rpcErrors(() => this.context().keys.create(actor, body)) as Promise<CreatedApiKeyView>;
  }

  async get(owner: Owner, id: string): Promise<ApiKeyView> {
    const actor = { kind: "service", owner: check(OwnerInput, owner, "owner") } as const;
    return rpcErrors(() => this.context().keys.get(actor, String(id))) as Promise<ApiKeyView>;
  }

  async list(owner: Owner, options: ListKeysOptions = {}): Promise<KeyListView> {
    const actor = { kind: "service", owner: check(OwnerInput, owner, "owner") } as const;
    const query = check(ListKeysQuery, options, "options");
    return rpcErrors(() => this.context().keys.list(actor, query)) as Promise<KeyListView>;
  }

  async revoke(owner: Owner, id: string): Promise<void> {
    const actor = { kind: "service", owner: check(OwnerInput, owner, "owner") } as const;
    return rpcErrors(() => this.context().keys.revoke(actor, String(id)));
  }
}
