/** Every HTTP route latchkey serves. Handlers only translate HTTP to service calls and back. */
import {
  ApiKey,
  CreateKeyRequest,
  CreatedApiKey,
  EventList,
  CreditsRequest,
  CreditsResult,
  Health,
  IdempotencyHeaders,
  ImportKeysRequest,
  ImportResult,
  KeyIdParams,
  KeyList,
  ListEventsQuery,
  ListOwnerEventsQuery,
  OpenApiDocument,
  OwnerEventList,
  OwnerLimits,
  OwnerLimitsRequest,
  OwnerParams,
  OwnerUsageReport,
  ListKeysQuery,
  Readiness,
  RevokeKeyQuery,
  RotateKeyRequest,
  UpdateKeyRequest,
  UsageQuery,
  UsageReport,
  VerifyRequest,
  VerifyResult,
  WhoAmI,
  described,
} from "../schemas";
import * as z from "zod/mini";
import { leakRoutes } from "./leak-routes";
import { meteredVerify } from "./limits";
import { openApiDocument } from "./openapi";
import { ownerFromPath } from "../service/owner-limits";
import { problem } from "./problem";
import { rootKeyRoutes } from "./root-key-routes";
import { type Route, defineRoute, json } from "./route";
import { webhookRoutes } from "./webhook-routes";

/** 100 keys with names, scopes, resources and 2 KB of metadata each fit. */
const IMPORT_MAX_BYTES = 256 * 1024;

export const routes: readonly Route[] = [
  defineRoute({
    method: "get",
    path: "/healthz",
    operationId: "health",
    summary: "Liveness check (touches no storage)",
    tag: "meta",
    auth: "none",
    success: { status: 200, description: "The Worker is up.", schema: Health },
    problems: [],
    handle: () => json({ status: "ok" }),
  }),
  defineRoute({
    method: "get",
    path: "/readyz",
    operationId: "ready",
    summary: "Readiness check: D1 reachable with this build's schema, KV reachable",
    description:
      "For load balancers and deploy pipelines; needs no credentials, so it says only `ok`, `behind` or `unreachable` per dependency (the details go to the log). 503 `not_ready` (with `checks`) while a dependency is down or D1's migrations are behind this build.",
    tag: "meta",
    auth: "none",
    success: { status: 200, description: "Every dependency answers.", schema: Readiness },
    problems: [],
    problemDescriptions: { 503: "`not_ready`: `checks` says which dependency is `unreachable` or `behind`." },
    handle: async ({ app }) => {
      const { ready, checks } = await app.readiness();
      if (ready) return json({ status: "ready", checks });
      const failing = Object.entries(checks).filter(([, check]) => check !== "ok");
      return problem("not_ready", {
        detail: `Not ready: ${failing.map(([name, check]) => `${name}: ${check}`).join("; ")}`,
        extra: { checks },
        headers: { "Retry-After": "5" },
      });
    },
  }),
  defineRoute({
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    summary: "This API's OpenAPI 3.1 document",
    tag: "meta",
    auth: "none",
    success: { status: 200, description: "The OpenAPI document.", schema: OpenApiDocument },
    problems: [],
    handle: ({ routes: served }) => json(openApiDocument(served), 200, { "Cache-Control": "public, max-age=300" }),
  }),
  defineRoute({
    method: "get",
    path: "/v1/whoami",
    operationId: "whoami",
    summary: "Who is calling: a person (JWT) or an API key",
    tag: "auth",
    auth: "required",
    success: { status: 200, description: "The authenticated caller.", schema: WhoAmI },
    problems: [403],
    problemDescriptions: { 403: "A root key: it acts for the owners each request names, and has no owner of its own." },
    handle: ({ app, actor }) => json(app.keys.whoami(actor)),
  }),
  defineRoute({
    method: "post",
    path: "/v1/keys",
    operationId: "createKey",
    summary: "Create an API key (the key is shown only in this response)",
    description:
      "With a JWT: a personal key, or a workspace key with `owner: workspace`. With a key holding `keys:write`: a key no more powerful than that key. With a root key: a key of the owner named by `owner` and `owner_id` (both required), which the root key's patterns must cover; the key is its owner's, outside the root key's lineage. Naming another owner than one's own is refused (403).",
    tag: "keys",
    auth: "required",
    body: CreateKeyRequest,
    requestHeaders: IdempotencyHeaders,
    success: {
      status: 201,
      description: "The key was created. Store `key` now: it cannot be shown again.",
      schema: CreatedApiKey,
      headers: z.object({ Location: described(z.string(), "The new key's URL.") }),
    },
    problems: [400, 403, 409, 413, 415, 422, 429],
    handle: async ({ app, actor }, { body, headers }) => {
      const created = await app.keys.create(actor, body, headers["Idempotency-Key"]);
      return json(created, 201, { Location: `/v1/keys/${created.id}`, "Cache-Control": "no-store" });
    },
  }),
  defineRoute({
    method: "post",
    path: "/v1/keys/import",
    operationId: "importKeys",
    summary: "Register existing keys by their SHA-256 (the keys themselves are never sent)",
    description:
      "1 to 100 keys per call, all or nothing: any invalid item is a 422 naming `keys.<i>.<field>` and nothing is imported. A hash already stored, or repeated in the batch, is a `conflict` in its result, never a second row. Each key is authorized as a create would be.",
    tag: "keys",
    auth: "required",
    body: ImportKeysRequest,
    bodyOptions: { maxBytes: IMPORT_MAX_BYTES },
    success: { status: 200, description: "One result per item, in input order.", schema: ImportResult },
    problems: [400, 403, 413, 415, 422],
    problemDescriptions: { 413: "The body is over 256 KB." },
    handle: async ({ app, actor }, { body }) => json(await app.keys.import(actor, body)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/keys",
    operationId: "listKeys",
    summary: "List the caller's keys, newest first",
    description:
      "A person sees their personal keys and their workspace's; a key sees its owner's keys (needs `keys:read`); a root key names one owner it covers with `owner_type` and `owner_id` (both required: 422 without).",
    tag: "keys",
    auth: "required",
    query: ListKeysQuery,
    success: { status: 200, description: "One page of keys.", schema: KeyList },
    problems: [400, 403, 422],
    handle: async ({ app, actor }, { query }) => json(await app.keys.list(actor, query)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/keys/:id",
    operationId: "getKey",
    summary: "Get one key",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    success: { status: 200, description: "The key.", schema: ApiKey },
    problems: [403],
    handle: async ({ app, actor, params }) => json(await app.keys.get(actor, params.id ?? "")),
  }),
  defineRoute({
    method: "patch",
    path: "/v1/keys/:id",
    operationId: "updateKey",
    summary: "Change a key's name, metadata, enabled, expiry, scopes, resources, allowed IPs or usage limits",
    description:
      "Fields left out are unchanged; null clears a nullable one; an empty object changes nothing. `enabled: false` makes the key fail with DISABLED until it is enabled again. With a key (needs `keys:write`), the key left behind must be within that key's powers. `ratelimits` replaces the list and `credits` sets the balance to its `remaining`; both apply to every live key sharing the key's usage counters (its rotations), and a key with usage limits may change neither (403). Revoked keys cannot be changed (409). A change that would leave a key of the lineage stronger than the key that minted it is 409 `conflict` with `key_ids` naming those keys: narrowing a key while keys it minted keep the power, widening a key beyond a key that minted it, or giving a key usage limits while keys it minted spend none (or other counters). Writes one audit event.",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    body: UpdateKeyRequest,
    success: { status: 200, description: "The key as it now is.", schema: ApiKey },
    problems: [400, 403, 409, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) => json(await app.keys.update(actor, params.id ?? "", body)),
  }),
  defineRoute({
    method: "post",
    path: "/v1/keys/:id/rotate",
    operationId: "rotateKey",
    summary: "Replace a key with a new one, keeping the old one working for a grace period",
    description:
      "The new key (shown only in this response) copies the old key's name, owner, scopes, resources, metadata, expiry, allowed IPs and usage limits (sharing its usage counters: one balance for both), and records `rotated_from`. The old key then expires at the earlier of its own expiry and now + `grace_seconds` (default 0: at once). Revoked or expired keys: 409. The body is optional: no body, or an empty one, is `{}`.",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    body: RotateKeyRequest,
    bodyOptions: { optional: true },
    success: {
      status: 201,
      description: "The replacement key. Store `key` now: it cannot be shown again.",
      schema: CreatedApiKey,
      headers: z.object({ Location: described(z.string(), "The new key's URL.") }),
    },
    problems: [400, 403, 409, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) => {
      const created = await app.keys.rotate(actor, params.id ?? "", body);
      return json(created, 201, { Location: `/v1/keys/${created.id}`, "Cache-Control": "no-store" });
    },
  }),
  defineRoute({
    method: "get",
    path: "/v1/keys/:id/events",
    operationId: "listKeyEvents",
    summary: "One key's audit log, newest first",
    description:
      "Every create, update, disable, enable, rotation and revocation of the key. Needs `keys:read` with a key.",
    tag: "audit",
    auth: "required",
    pathParams: KeyIdParams,
    query: ListEventsQuery,
    success: { status: 200, description: "One page of events.", schema: EventList },
    problems: [400, 403],
    handle: async ({ app, actor, params }, { query }) => json(await app.keys.keyEvents(actor, params.id ?? "", query)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/events",
    operationId: "listEvents",
    summary: "The audit log of the caller's keys, newest first",
    description:
      "A person sees the events of their personal keys and their workspace's; a key sees its owner's (needs `keys:read`); a root key names one owner it covers with `owner_type` and `owner_id` (both required). Filter by `action` and a time range; page with `cursor`.",
    tag: "audit",
    auth: "required",
    query: ListOwnerEventsQuery,
    success: { status: 200, description: "One page of events.", schema: EventList },
    problems: [400, 403, 422],
    handle: async ({ app, actor }, { query }) => json(await app.keys.listEvents(actor, query)),
  }),
  defineRoute({
    method: "delete",
    path: "/v1/keys/:id",
    operationId: "revokeKey",
    summary: "Revoke a key (idempotent), or with cascade=true the key and its whole lineage",
    description:
      "The key stops working at once here and everywhere within the revocation bound (about 10 s). With `cascade=true`, its whole lineage (every key it created or imported, the replacements of keys rotated at its request, and theirs) is revoked in the same write.",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    query: RevokeKeyQuery,
    success: { status: 204, description: "The key is revoked." },
    problems: [400, 403],
    handle: async ({ app, actor, params }, { query }) => {
      await app.keys.revoke(actor, params.id ?? "", query);
      return new Response(null, { status: 204 });
    },
  }),
  defineRoute({
    method: "post",
    path: "/v1/keys/:id/credits",
    operationId: "adjustCredits",
    summary: "Set, raise or lower a key's credit balance",
    description:
      "Needs `keys:write` and the same rights as a PATCH; a key with usage limits may not change credits. The balance is the key chain's: a rotated key and its successor share it. A decrement stops at 0 (never a negative balance). Revoked keys and keys without credits: 409. Recorded in D1 with its audit event in one write, and applied by the counter exactly once.",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    body: CreditsRequest,
    success: { status: 200, description: "The balance afterwards.", schema: CreditsResult },
    problems: [400, 403, 409, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) =>
      json(await app.keys.adjustCredits(actor, params.id ?? "", body)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/keys/:id/usage",
    operationId: "keyUsage",
    summary: "A key's verifications per hour or day, by outcome",
    description:
      "Counts are gathered by each isolate and written in batches: the last half minute may not be in yet, and `pending_from` says from when counts may be pending.",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    query: UsageQuery,
    success: { status: 200, description: "One bucket per hour or day of the range.", schema: UsageReport },
    problems: [400, 403],
    handle: async ({ app, actor, params }, { query }) => json(await app.keys.usage(actor, params.id ?? "", query)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/owners/:owner_type/:owner_id/limits",
    operationId: "getOwnerLimits",
    summary: "An owner's per-customer limits, with the live shared balance",
    description:
      "Rate limits and credits shared by every key of the owner, on top of each key's own. For a trusted Worker over RPC (its owner), and a workspace admin (their workspace); an API key or anyone else: 403. An owner without limits shows `ratelimits: []` and `credits: null`.",
    tag: "owners",
    auth: "required",
    pathParams: OwnerParams,
    success: { status: 200, description: "The owner's limits.", schema: OwnerLimits },
    problems: [403, 404],
    handle: async ({ app, actor, params }) => json(await app.owners.get(actor, ownerFromPath(params))),
  }),
  defineRoute({
    method: "put",
    path: "/v1/owners/:owner_type/:owner_id/limits",
    operationId: "setOwnerLimits",
    summary: "Set an owner's per-customer limits (shared by all its keys)",
    description:
      "`ratelimits` replaces the owner's list and `credits` its rule, setting the shared balance to `remaining`; null clears one; a field left out is unchanged. Every verification of any of the owner's keys then spends from the owner's counters as well as the key's own, exactly. Reaches every cache within the change bound. Audited (`GET .../events`). Who may: as for GET.",
    tag: "owners",
    auth: "required",
    pathParams: OwnerParams,
    body: OwnerLimitsRequest,
    success: { status: 200, description: "The owner's limits afterwards.", schema: OwnerLimits },
    problems: [400, 403, 404, 409, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) => json(await app.owners.put(actor, ownerFromPath(params), body)),
  }),
  defineRoute({
    method: "post",
    path: "/v1/owners/:owner_type/:owner_id/credits",
    operationId: "adjustOwnerCredits",
    summary: "Set, raise or lower an owner's shared credit balance",
    description:
      "As a key's credits operation, on the balance all the owner's keys share. A decrement stops at 0. An owner without credits: 409. Who may: as for the owner's limits.",
    tag: "owners",
    auth: "required",
    pathParams: OwnerParams,
    body: CreditsRequest,
    success: { status: 200, description: "The balance afterwards.", schema: CreditsResult },
    problems: [400, 403, 404, 409, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) =>
      json(await app.owners.adjustCredits(actor, ownerFromPath(params), body)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/owners/:owner_type/:owner_id/usage",
    operationId: "ownerUsage",
    summary: "Verifications of all an owner's keys per hour or day, by outcome",
    description: "The sum of the usage reports of every key of the owner (revoked ones included).",
    tag: "owners",
    auth: "required",
    pathParams: OwnerParams,
    query: UsageQuery,
    success: { status: 200, description: "One bucket per hour or day of the range.", schema: OwnerUsageReport },
    problems: [400, 403, 404],
    handle: async ({ app, actor, params }, { query }) =>
      json(await app.owners.usage(actor, ownerFromPath(params), query)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/owners/:owner_type/:owner_id/events",
    operationId: "ownerEvents",
    summary: "The audit log of an owner's per-customer limits, newest first",
    description: "The latest 100 changes of the owner's limits and credits, with who made them.",
    tag: "owners",
    auth: "required",
    pathParams: OwnerParams,
    success: { status: 200, description: "The owner's events.", schema: OwnerEventList },
    problems: [403, 404],
    handle: async ({ app, actor, params }) => json(await app.owners.events(actor, ownerFromPath(params))),
  }),
  defineRoute({
    method: "post",
    path: "/v1/verify",
    operationId: "verifyKey",
    summary: "Check a key, optionally for a scope and a resource",
    description:
      "For services that are not Workers (Workers use the KeyService binding). Always 200 for a well-formed request; `valid` and `code` give the verdict. When the deployment sets VERIFY_TOKEN, callers must present it; otherwise NOT_FOUND answers are rate limited per client (429).",
    tag: "verify",
    auth: "verify",
    body: VerifyRequest,
    success: { status: 200, description: "The verdict.", schema: VerifyResult },
    problems: [400, 413, 415, 422],
    handle: async ({ app, env, request }, { body }) => {
      const { key, ...options } = body;
      if (app.config.verifyAccess.kind !== "open") return json(await app.keys.verify(key, options));
      return meteredVerify(request, env, app.keys, key, options);
    },
  }),
  ...leakRoutes,
  ...rootKeyRoutes,
  ...webhookRoutes,
];
