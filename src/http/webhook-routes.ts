/** The webhook routes (part of the one route table, routes.ts). Handlers only translate HTTP to service calls. */
import * as z from "zod/mini";
import {
  CreateWebhookRequest,
  CreatedWebhook,
  DeliveryParams,
  ListDeliveriesQuery,
  RotateWebhookSecretRequest,
  UpdateWebhookRequest,
  Webhook,
  WebhookDelivery,
  WebhookDeliveryList,
  WebhookIdParams,
  WebhookList,
  described,
} from "../schemas";
import { type Route, defineRoute, json } from "./route";

const WHO =
  "A person for their own keys, a workspace admin for the workspace's keys (`owner: workspace`), an operator deployment-wide (`owner: deployment`), a root key with `keys:write` for owners it covers (`owner` + `owner_id`, or `owners` patterns; the endpoint is its own and its rotations'). An API key may not (403).";

export const webhookRoutes: readonly Route[] = [
  defineRoute({
    method: "post",
    path: "/v1/webhooks",
    operationId: "createWebhook",
    summary: "Register a webhook endpoint (its signing secret is shown only in this response)",
    description: `${WHO} Deliveries follow Standard Webhooks 1.0 (docs/webhooks.md). The URL must be https and public: a private, loopback, link-local or reserved address is a 422 naming \`url\`.`,
    tag: "webhooks",
    auth: "required",
    body: CreateWebhookRequest,
    success: {
      status: 201,
      description: "The endpoint. Store `secret` now: it cannot be shown again.",
      schema: CreatedWebhook,
      headers: z.object({ Location: described(z.string(), "The endpoint's URL.") }),
    },
    problems: [400, 403, 409, 413, 415, 422],
    handle: async ({ app, actor }, { body }) => {
      const created = await app.webhooks.create(actor, body);
      return json(created, 201, { Location: `/v1/webhooks/${created.id}`, "Cache-Control": "no-store" });
    },
  }),
  defineRoute({
    method: "get",
    path: "/v1/webhooks",
    operationId: "listWebhooks",
    summary: "The webhook endpoints the caller manages, newest first",
    tag: "webhooks",
    auth: "required",
    success: { status: 200, description: "The endpoints (at most 100 per owner).", schema: WebhookList },
    problems: [403],
    handle: async ({ app, actor }) => json(await app.webhooks.list(actor)),
  }),
  defineRoute({
    method: "get",
    path: "/v1/webhooks/:id",
    operationId: "getWebhook",
    summary: "Get one webhook endpoint",
    tag: "webhooks",
    auth: "required",
    pathParams: WebhookIdParams,
    success: { status: 200, description: "The endpoint.", schema: Webhook },
    problems: [403],
    handle: async ({ app, actor, params }) => json(await app.webhooks.get(actor, params.id ?? "")),
  }),
  defineRoute({
    method: "patch",
    path: "/v1/webhooks/:id",
    operationId: "updateWebhook",
    summary: "Change an endpoint's url, events, description or enabled",
    description: "Fields left out are unchanged. `enabled: true` also re-enables an endpoint a 410 disabled.",
    tag: "webhooks",
    auth: "required",
    pathParams: WebhookIdParams,
    body: UpdateWebhookRequest,
    success: { status: 200, description: "The endpoint as it now is.", schema: Webhook },
    problems: [400, 403, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) => json(await app.webhooks.update(actor, params.id ?? "", body)),
  }),
  defineRoute({
    method: "delete",
    path: "/v1/webhooks/:id",
    operationId: "deleteWebhook",
    summary: "Delete an endpoint and its delivery log (pending deliveries are dropped)",
    tag: "webhooks",
    auth: "required",
    pathParams: WebhookIdParams,
    success: { status: 204, description: "The endpoint is deleted." },
    problems: [403],
    handle: async ({ app, actor, params }) => {
      await app.webhooks.delete(actor, params.id ?? "");
      return new Response(null, { status: 204 });
    },
  }),
  defineRoute({
    method: "post",
    path: "/v1/webhooks/:id/rotate-secret",
    operationId: "rotateWebhookSecret",
    summary: "Replace the signing secret; the old one keeps signing beside it for a grace period",
    description:
      "The new secret is shown only in this response. During the grace period (`grace_seconds`, default a day) every delivery carries two `v1,` signatures, one per secret. The body is optional.",
    tag: "webhooks",
    auth: "required",
    pathParams: WebhookIdParams,
    body: RotateWebhookSecretRequest,
    bodyOptions: { optional: true },
    success: { status: 200, description: "The endpoint with its new `secret`.", schema: CreatedWebhook },
    problems: [400, 403, 413, 415, 422],
    handle: async ({ app, actor, params }, { body }) =>
      json(await app.webhooks.rotateSecret(actor, params.id ?? "", body), 200, { "Cache-Control": "no-store" }),
  }),
  defineRoute({
    method: "get",
    path: "/v1/webhooks/:id/deliveries",
    operationId: "listWebhookDeliveries",
    summary: "An endpoint's delivery log, newest first",
    description: "Each delivery's status, attempts, last response status or error, and next attempt.",
    tag: "webhooks",
    auth: "required",
    pathParams: WebhookIdParams,
    query: ListDeliveriesQuery,
    success: { status: 200, description: "One page of deliveries.", schema: WebhookDeliveryList },
    problems: [400, 403],
    handle: async ({ app, actor, params }, { query }) =>
      json(await app.webhooks.deliveries(actor, params.id ?? "", query)),
  }),
  defineRoute({
    method: "post",
    path: "/v1/webhooks/:id/deliveries/:delivery_id/retry",
    operationId: "retryWebhookDelivery",
    summary: "Attempt a delivery again now",
    description:
      "One more attempt, whatever the delivery's status (a delivered one is sent again with the same `webhook-id`). A disabled endpoint: 409.",
    tag: "webhooks",
    auth: "required",
    pathParams: DeliveryParams,
    success: { status: 202, description: "The delivery is queued.", schema: WebhookDelivery },
    problems: [403, 409],
    handle: async ({ app, actor, params }) =>
      json(await app.webhooks.retry(actor, params.id ?? "", params.delivery_id ?? ""), 202),
  }),
];
