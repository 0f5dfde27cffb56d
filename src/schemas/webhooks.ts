/** Webhook endpoints and their deliveries: requests, views and listing options. */
import * as z from "zod/mini";
import { WEBHOOK_EVENT_TYPES } from "../webhook-model";
import { CONTROL_CHARS, OwnerIdField, Timestamp, described, meta, pageCursor, pageLimit, uniqueArray } from "./common";
import { OwnerPattern } from "./root-keys";

const WebhookUrl = z
  .string()
  .check(z.minLength(1, "Required"), z.maxLength(2048, "Must be at most 2048 characters"))
  .apply(
    meta({
      description:
        "Where deliveries are posted: an https URL of a public host (private, loopback and link-local addresses are refused, here and before each delivery). Local development (`npm start`) also takes `http://127.0.0.1:<port>`.",
      example: "https://hooks.example.com/latchkey",
    }),
  );

const EventTypes = z
  .nullable(uniqueArray(z.enum(WEBHOOK_EVENT_TYPES), WEBHOOK_EVENT_TYPES.length, "Must name at least one event type"))
  .apply(meta({ description: "The event types delivered; null or absent: every type." }));

const Description = z.string().check(
  z.maxLength(200, "Must be at most 200 characters"),
  z.refine((s) => !CONTROL_CHARS.test(s), "Must not contain control characters"),
);

export const CreateWebhookRequest = z
  .strictObject({
    url: WebhookUrl,
    events: z.optional(EventTypes),
    description: z.optional(z.nullable(Description)),
    owner: z.optional(z.enum(["user", "workspace", "deployment"])).apply(
      meta({
        description:
          "Whose keys' events: `user` (default for a person: their own keys), `workspace` (a workspace admin: the workspace's keys) or `deployment` (an operator: every owner's keys). A root key names one owner it covers with `owner` and `owner_id`, or gives `owners`.",
      }),
    ),
    owner_id: z.optional(OwnerIdField).apply(
      meta({
        description:
          "The owner's id. Required with a root key (with `owner`, unless it gives `owners`): the endpoint receives that owner's keys' events. Anyone else may name only the owner they register for (another: 403).",
      }),
    ),
    owners: z.optional(uniqueArray(OwnerPattern, 100)).apply(
      meta({
        description:
          "A root key only: the owner patterns whose keys' events the endpoint receives (`user:*`, `workspace:acme`), each within the root key's own; stored with the endpoint. Instead of `owner` and `owner_id`.",
      }),
    ),
  })
  .apply(meta({ id: "CreateWebhookRequest" }));
export type CreateWebhookInput = z.output<typeof CreateWebhookRequest>;

export const UpdateWebhookRequest = z
  .strictObject({
    url: z.optional(WebhookUrl),
    events: z.optional(EventTypes),
    description: z.optional(z.nullable(Description)),
    enabled: described(z.optional(z.boolean()), "false: nothing is delivered until set true again."),
  })
  .apply(meta({ id: "UpdateWebhookRequest" }));
export type UpdateWebhookInput = z.output<typeof UpdateWebhookRequest>;

export const RotateWebhookSecretRequest = z
  .strictObject({
    grace_seconds: described(
      z.optional(z.int().check(z.gte(0, "Must be from 0 to 604800"), z.lte(604800, "Must be from 0 to 604800"))),
      "How long the old secret keeps signing beside the new one (default 86400; at most 7 days).",
    ),
  })
  .apply(meta({ id: "RotateWebhookSecretRequest" }));
export type RotateWebhookSecretInput = z.output<typeof RotateWebhookSecretRequest>;

export const Webhook = z
  .object({
    id: described(z.string(), "The endpoint's id (UUID v4)."),
    url: z.string(),
    description: z.nullable(z.string()),
    events: z.nullable(z.array(z.enum(WEBHOOK_EVENT_TYPES))),
    owner_type: described(
      z.enum(["user", "workspace", "deployment", "root"]),
      "Whose endpoint it is: a person's, a workspace's, the deployment's (every owner's events) or a root key's (`owners` says whose events).",
    ),
    owner_id: described(
      z.string(),
      "The subject or workspace id; `*` for a deployment-wide endpoint; for a root key's, the id of the root key that started its rotation chain.",
    ),
    owners: described(
      z.nullable(z.array(z.string())),
      "A root key's endpoint: the owner patterns whose keys' events it receives, fixed at registration. Null for the others.",
    ),
    enabled: z.boolean(),
    disabled_reason: described(
      z.nullable(z.string()),
      "`gone` when the receiver answered 410 and the service disabled the endpoint; otherwise null.",
    ),
    previous_secret_expires_at: described(
      z.nullable(Timestamp),
      "Until when the secret replaced by the last rotation still signs beside the current one.",
    ),
    created_at: Timestamp,
    updated_at: z.nullable(Timestamp),
  })
  .apply(meta({ id: "Webhook" }));
export type WebhookView = z.infer<typeof Webhook>;

export const CreatedWebhook = z
  .object({
    ...Webhook.shape,
    secret: described(z.string(), "The signing secret (`whsec_…`), shown only in this response."),
  })
  .apply(meta({ id: "CreatedWebhook" }));

export const WebhookList = z.object({ data: z.array(Webhook) }).apply(meta({ id: "WebhookList" }));

export const WebhookIdParams = z.strictObject({ id: z.string().apply(meta({ description: "The endpoint's id." })) });
export const DeliveryParams = z.strictObject({
  id: z.string().apply(meta({ description: "The endpoint's id." })),
  delivery_id: z.string().apply(meta({ description: "The delivery's id (its webhook-id)." })),
});

export const WebhookDelivery = z
  .object({
    id: described(z.string(), "The delivery's id: the `webhook-id` header the receiver sees."),
    event_id: described(z.string(), "The audit event delivered."),
    type: z.enum(WEBHOOK_EVENT_TYPES),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.int(),
    last_response_status: described(z.nullable(z.int()), "The receiver's last HTTP status; null before an answer."),
    last_error: described(
      z.nullable(z.string()),
      "Why the last attempt failed without an answer: `timeout`, `network`, `address_refused`, `dns_failed`, `secret_unreadable`, `not_configured`, `endpoint_disabled`, `endpoint_deleted`.",
    ),
    next_attempt_at: described(z.nullable(Timestamp), "When the next attempt is due (pending only)."),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .apply(meta({ id: "WebhookDelivery" }));
export type WebhookDeliveryView = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveryList = z
  .object({ data: z.array(WebhookDelivery), next_cursor: z.nullable(z.string()) })
  .apply(meta({ id: "WebhookDeliveryList" }));

export const ListDeliveriesQuery = z
  .strictObject({ limit: pageLimit(z.coerce.number()), cursor: pageCursor() })
  .apply(meta({ id: "ListDeliveriesQuery" }));
export type ListDeliveriesInput = z.output<typeof ListDeliveriesQuery>;
