/** The operators' root-key routes (/v1/root-keys; docs/backends.md), in the one route table. */
import * as z from "zod/mini";
import {
  CreateRootKeyRequest,
  CreatedRootKey,
  ListRootKeysQuery,
  RootKey,
  RootKeyIdParams,
  RootKeyList,
  RotateKeyRequest,
  described,
} from "../schemas";
import { type Route, defineRoute, json } from "./route";

export const rootKeyRoutes: readonly Route[] = [
  defineRoute({
    method: "post",
    path: "/v1/root-keys",
    operationId: "createRootKey",
    summary: "Create a root key (operators only; the key is shown only in this response)",
    description:
      "A root key lets a backend manage the keys of any owner its `owners` patterns cover, on /v1/keys, naming the owner in each request (docs/backends.md). Needs an operator's JWT (a role in OPERATOR_ROLES); API keys and root keys are refused (401), a person without the role gets 403 `operator_required`.",
    tag: "root-keys",
    auth: "person",
    body: CreateRootKeyRequest,
    success: {
      status: 201,
      description: "The root key was created. Store `key` now, as a secret: it cannot be shown again.",
      schema: CreatedRootKey,
      headers: z.object({ Location: described(z.string(), "The new root key's URL.") }),
    },
    problems: [400, 403, 413, 415, 422],
    handle: async ({ app, actor }, { body }) => {
      const created = await app.rootKeys.create(actor, body);
      return json(created, 201, { Location: `/v1/root-keys/${created.id}`, "Cache-Control": "no-store" });
    },
  }),
  defineRoute({
    method: "get",
    path: "/v1/root-keys",
    operationId: "listRootKeys",
    summary: "List root keys, newest first (operators only)",
    tag: "root-keys",
    auth: "person",
    query: ListRootKeysQuery,
    success: { status: 200, description: "One page of root keys.", schema: RootKeyList },
    problems: [400, 403],
    handle: async ({ app, actor }, { query }) => json(await app.rootKeys.list(actor, query)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/root-keys/:id",
    operationId: "getRootKey",
    summary: "Get one root key (operators only)",
    tag: "root-keys",
    auth: "person",
    pathParams: RootKeyIdParams,
    success: { status: 200, description: "The root key.", schema: RootKey },
    problems: [403],
    handle: async ({ app, actor, params }) => json(await app.rootKeys.get(actor, params.id ?? "")),
  }),
  defineRoute({
    method: "post",
    path: "/v1/root-keys/:id/rotate",
    operationId: "rotateRootKey",
    summary: "Replace a root key with a new one, keeping the old one working for a grace period (operators only)",
    description:
      "The new root key (shown only in this response) copies the old one's name, owners, scopes, expiry and allowed IPs, and records `rotated_from`. The old one then expires at the earlier of its own expiry and now + `grace_seconds` (default 0: at once). Revoked or expired root keys: 409. The body is optional.",
    tag: "root-keys",
    auth: "person",
    pathParams: RootKeyIdParams,
    body: RotateKeyRequest,
    bodyOptions: { optional: true },
    success: {
      status: 201,
      description: "The replacement root key. Store `key` now: it cannot be shown again.",
      schema: CreatedRootKey,
      headers: z.object({ Location: described(z.string(), "The new root key's URL.") }),
    },
    problems: [400, 403, 409, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) => {
      const created = await app.rootKeys.rotate(actor, params.id ?? "", body);
      return json(created, 201, { Location: `/v1/root-keys/${created.id}`, "Cache-Control": "no-store" });
    },
  }),
  defineRoute({
    method: "delete",
    path: "/v1/root-keys/:id",
    operationId: "revokeRootKey",
    summary: "Revoke a root key (idempotent; operators only)",
    description:
      "The root key is refused from the next request on, everywhere (it is never cached). The keys it created belong to their owners and keep working.",
    tag: "root-keys",
    auth: "person",
    pathParams: RootKeyIdParams,
    success: { status: 204, description: "The root key is revoked." },
    problems: [403],
    handle: async ({ app, actor, params }) => {
      await app.rootKeys.revoke(actor, params.id ?? "");
      return new Response(null, { status: 204 });
    },
  }),
];
