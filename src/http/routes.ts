/** Every HTTP route latchkey serves. Handlers only translate HTTP to service calls and back. */
import {
  ApiKey,
  CreateKeyRequest,
  CreatedApiKey,
  Health,
  IdempotencyHeaders,
  KeyIdParams,
  KeyList,
  OpenApiDocument,
  ListKeysQuery,
  Readiness,
  VerifyRequest,
  VerifyResult,
  WhoAmI,
} from "../schemas";
import { z } from "zod";
import { openApiDocument } from "./openapi";
import { problem } from "./problem";
import { type Route, defineRoute, json } from "./route";

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
      "For load balancers and deploy pipelines. 503 `not_ready` (with `checks`) while a dependency is down or D1's migrations are behind this build.",
    tag: "meta",
    auth: "none",
    success: { status: 200, description: "Every dependency answers.", schema: Readiness },
    problems: [],
    problemDescriptions: { 503: "`not_ready`: `checks` names each dependency that is down or behind." },
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
    handle: () => json(openApiDocument(routes), 200, { "Cache-Control": "public, max-age=300" }),
  }),
  defineRoute({
    method: "get",
    path: "/v1/whoami",
    operationId: "whoami",
    summary: "Who is calling: a person (JWT) or an API key",
    tag: "auth",
    auth: "required",
    success: { status: 200, description: "The authenticated caller.", schema: WhoAmI },
    problems: [],
    handle: ({ app, actor }) => json(app.keys.whoami(actor)),
  }),
  defineRoute({
    method: "post",
    path: "/v1/keys",
    operationId: "createKey",
    summary: "Create an API key (the key is shown only in this response)",
    description:
      "With a JWT: a personal key, or a workspace key with `owner: workspace`. With a key holding `keys:write`: a key no more powerful than that key.",
    tag: "keys",
    auth: "required",
    body: CreateKeyRequest,
    requestHeaders: IdempotencyHeaders,
    success: {
      status: 201,
      description: "The key was created. Store `key` now: it cannot be shown again.",
      schema: CreatedApiKey,
      headers: z.object({ Location: z.string().meta({ description: "The new key's URL." }) }),
    },
    problems: [400, 403, 409, 413, 415, 422],
    handle: async ({ app, actor }, { body, headers }) => {
      const created = await app.keys.create(actor, body, headers["Idempotency-Key"]);
      return json(created, 201, { Location: `/v1/keys/${created.id}`, "Cache-Control": "no-store" });
    },
  }),
  defineRoute({
    method: "get",
    path: "/v1/keys",
    operationId: "listKeys",
    summary: "List the caller's keys, newest first",
    description:
      "A person sees their personal keys and their workspace's; a key sees its owner's keys (needs `keys:read`).",
    tag: "keys",
    auth: "required",
    query: ListKeysQuery,
    success: { status: 200, description: "One page of keys.", schema: KeyList },
    problems: [400, 403],
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
    method: "delete",
    path: "/v1/keys/:id",
    operationId: "revokeKey",
    summary: "Revoke a key (idempotent)",
    description: "The key stops working at once here and everywhere within the revocation bound (see README).",
    tag: "keys",
    auth: "required",
    pathParams: KeyIdParams,
    success: { status: 204, description: "The key is revoked." },
    problems: [403],
    handle: async ({ app, actor, params }) => {
      await app.keys.revoke(actor, params.id ?? "");
      return new Response(null, { status: 204 });
    },
  }),
  defineRoute({
    method: "post",
    path: "/v1/verify",
    operationId: "verifyKey",
    summary: "Check a key, optionally for a scope and a resource",
    description:
      "For services that are not Workers (Workers use the KeyService binding). Always 200 for a well-formed request; `valid` and `code` give the verdict.",
    tag: "verify",
    auth: "none",
    body: VerifyRequest,
    success: { status: 200, description: "The verdict.", schema: VerifyResult },
    problems: [400, 413, 415, 422],
    handle: async ({ app }, { body }) => {
      const { key, ...options } = body;
      return json(await app.keys.verify(key, options));
    },
  }),
];
