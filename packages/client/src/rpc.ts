/**
 * The types of latchkey's service-binding entrypoints, for Workers that bind to them:
 *
 *   import type { KeyVerifier } from "@latchkey/client/rpc";
 *   interface Env { KEYS: Service<KeyVerifier> }
 *
 * Type-only: nothing of latchkey is bundled. latchkey's src/rpc.ts implements these interfaces and
 * takes its view types from here, so its type check fails when the two drift apart (as does
 * test/clients/client-types.test.ts, which also compares the views with latchkey's schemas).
 */
import type {
  ApiKey,
  AuditEvent,
  CreateKeyInput,
  CreateWebhookInput,
  CreatedWebhook,
  CreditsOperation,
  CreditsResult,
  ImportItem,
  ImportResult,
  LeakReportInput,
  LeakReportResult,
  ListDeliveriesOptions,
  ListEventsOptions,
  ListKeysOptions,
  Owner,
  OwnerLimits,
  OwnerLimitsInput,
  OwnerUsageReport,
  RevokeOptions,
  RotateKeyInput,
  RotateWebhookSecretInput,
  UpdateKeyInput,
  UpdateWebhookInput,
  UsageQuery,
  VerifyOptions,
  VerifyResult,
  VerifyVerdict,
  Webhook,
  WebhookDelivery,
  WebhookDeliveryList,
  WebhookList,
} from "./types.js";

declare global {
  /**
   * Merged with @cloudflare/workers-types' (or `wrangler types`') own declaration, which adds the
   * brand `Service<T>` requires; empty where those types are absent, so this file compiles anywhere.
   */
  namespace Rpc {
    interface WorkerEntrypointBranded {}
  }
}

export type { Owner };
export type { RpcError, RpcErrorCode } from "./rpc-errors.js";
export type VerifyResultView = VerifyResult;
/** The verdict on a live key (its details included). */
export type VerifyVerdictView = VerifyVerdict;

/** Metadata values as a binding types them (a recursive JSON type is too deep for RPC's types). */
export type MetadataValue = string | number | boolean | null | object;
export type ApiKeyView = Omit<ApiKey, "metadata"> & { metadata: Record<string, MetadataValue> | null };
export type CreatedApiKeyView = ApiKeyView & { key: string };
export interface KeyListView {
  data: ApiKeyView[];
  next_cursor: string | null;
}
export type CreateKeyOptions = CreateKeyInput;
export type UpdateKeyOptions = UpdateKeyInput;
export type RotateKeyOptions = RotateKeyInput;
export type { ListEventsOptions, ListKeysOptions };
/** An audit event as a binding types it (`changes` values are JSON). */
export type AuditEventRpcView = Omit<AuditEvent, "changes"> & {
  changes: Record<string, { old: MetadataValue; new: MetadataValue }>;
};
export interface EventListView {
  data: AuditEventRpcView[];
  next_cursor: string | null;
}
export type VerifyKeyOptions = VerifyOptions;
export interface ImportKeysOptions {
  keys: ImportItem[];
}
export type ImportResultView = ImportResult;
export type RevokeKeyOptions = RevokeOptions;

/**
 * Verification only: bind this to Workers that guard their routes with keys. Errors cross the binding
 * with a code in the message: `[invalid] ...` (e.g. a resource id latchkey would never accept) or
 * `[unavailable] ...` (latchkey's storage is down); `parseRpcError` from "@latchkey/client" reads it.
 */
export interface KeyVerifier extends Rpc.WorkerEntrypointBranded {
  /** The same verdict as POST /v1/verify. */
  verify(key: string, options?: VerifyKeyOptions): Promise<VerifyResultView>;
}

/**
 * Verification and management of any owner's keys: bind it only to trusted Workers. Errors carry
 * `[invalid]`, `[not_found]`, `[forbidden]`, `[conflict]` (the key's state forbids the change),
 * `[quota_exceeded]` (the owner holds its most live keys), `[rate_limited]` (too many creations just
 * now), `[unavailable]` or `[internal]` in their message: RPC_ERROR_CODES lists them, and
 * `parseRpcError` from "@latchkey/client" reads them.
 */
export interface KeyService extends Rpc.WorkerEntrypointBranded {
  verify(key: string, options?: VerifyKeyOptions): Promise<VerifyResultView>;
  create(owner: Owner, input: CreateKeyOptions): Promise<CreatedApiKeyView>;
  get(owner: Owner, id: string): Promise<ApiKeyView>;
  list(owner: Owner, options?: ListKeysOptions): Promise<KeyListView>;
  /** Revokes the key; with `{ cascade: true }` also every key descending from it, in one write. */
  revoke(owner: Owner, id: string, options?: RevokeKeyOptions): Promise<void>;
  /** The same as POST /v1/keys/{id}/credits: the balance afterwards. */
  credits(owner: Owner, id: string, input: CreditsOperation): Promise<CreditsResult>;
  /** POST /v1/keys/import for `owner`: existing keys registered by their SHA-256. */
  import(owner: Owner, input: ImportKeysOptions): Promise<ImportResultView>;
  /** The same as PATCH /v1/keys/{id}: fields left out are unchanged, null clears. */
  update(owner: Owner, id: string, input: UpdateKeyOptions): Promise<ApiKeyView>;
  /** The same as POST /v1/keys/{id}/rotate: the replacement key, shown once. */
  rotate(owner: Owner, id: string, options?: RotateKeyOptions): Promise<CreatedApiKeyView>;
  /** One key's audit events, newest first. */
  keyEvents(owner: Owner, id: string, options?: ListEventsOptions): Promise<EventListView>;
  /** The owner's audit events, newest first. */
  listEvents(owner: Owner, options?: ListEventsOptions): Promise<EventListView>;
  /** POST /v1/leaks: each key of the deployment among `keys` is revoked (LEAK_ACTION), whatever its owner. */
  reportLeaks(input: LeakReportInput): Promise<LeakReportResult>;
  /** GET /v1/owners/{type}/{id}/limits for `owner`: its per-customer limits with the live balance. */
  ownerLimits(owner: Owner): Promise<OwnerLimits>;
  /** PUT /v1/owners/{type}/{id}/limits for `owner`. */
  setOwnerLimits(owner: Owner, input: OwnerLimitsInput): Promise<OwnerLimits>;
  /** POST /v1/owners/{type}/{id}/credits for `owner`: the shared balance afterwards. */
  ownerCredits(owner: Owner, input: CreditsOperation): Promise<CreditsResult>;
  /** GET /v1/owners/{type}/{id}/usage for `owner`. */
  ownerUsage(owner: Owner, query?: UsageQuery): Promise<OwnerUsageReport>;
  /** POST /v1/webhooks for `owner`: the endpoint, with its signing secret shown only in this answer. */
  createWebhook(owner: Owner, input: CreateWebhookInput): Promise<CreatedWebhook>;
  /** GET /v1/webhooks for `owner`: its endpoints, newest first. */
  listWebhooks(owner: Owner): Promise<WebhookList>;
  /** GET /v1/webhooks/{id} for `owner`. */
  getWebhook(owner: Owner, id: string): Promise<Webhook>;
  /** PATCH /v1/webhooks/{id} for `owner`: fields left out are unchanged. */
  updateWebhook(owner: Owner, id: string, input: UpdateWebhookInput): Promise<Webhook>;
  /** DELETE /v1/webhooks/{id} for `owner`: the endpoint and its delivery log. */
  deleteWebhook(owner: Owner, id: string): Promise<void>;
  /** POST /v1/webhooks/{id}/rotate-secret for `owner`: the new secret, shown only in this answer. */
  rotateWebhookSecret(owner: Owner, id: string, options?: RotateWebhookSecretInput): Promise<CreatedWebhook>;
  /** GET /v1/webhooks/{id}/deliveries for `owner`: the delivery log, newest first. */
  webhookDeliveries(owner: Owner, id: string, options?: ListDeliveriesOptions): Promise<WebhookDeliveryList>;
  /** POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry for `owner`: one more attempt now. */
  retryWebhookDelivery(owner: Owner, id: string, deliveryId: string): Promise<WebhookDelivery>;
}
