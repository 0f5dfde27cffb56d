/**
 * Replicas' "Create Personal API Key" (docs.tryreplicas.com, POST /v1/user/api-keys): a personal key
 * for the person a JWT names. The page says "Requires JWT authentication", so an API key is refused
 * (401) before it is looked up. Its errors are `{ "error", "details" }` as application/json, and it
 * documents no 422: invalid input is a 400. The page's request schema has one field; an unknown field
 * is refused (400) rather than ignored, as the page gives no framework that would ignore it and a
 * misspelt field should not pass silently.
 */
import * as z from "zod/mini";
import { defineRoute, json, type ErrorFormat, type Route } from "../route";
import { described, meta } from "../../schemas";
import { KeyNameField, describeFields } from "./shared";

const ReplicasError = z
  .object({
    error: described(z.string(), "Error message"),
    details: described(z.nullable(z.string()), "Additional error details"),
  })
  .apply(meta({ id: "ReplicasError" }));

const errorFormat: ErrorFormat = {
  mediaType: "application/json",
  status: (status) => (status === 422 ? 400 : status),
  schema: () => ReplicasError,
  body: (failure) => ({
    error: failure.status === 400 ? "Invalid request" : failure.title,
    // A 500 discloses nothing more than its title.
    details: failure.status === 500 ? null : failure.errors ? describeFields(failure.errors) : failure.detail,
  }),
};

const CreateRequest = z
  .strictObject({ name: described(KeyNameField, "Display name for the API key") })
  .apply(meta({ id: "ReplicasCreateApiKeyRequest" }));

const CreatedKey = z
  .object({
    id: described(z.string(), "The key's id."),
    name: z.string(),
    key: described(z.string(), "The API key. Only returned once."),
    created_at: described(z.string(), "RFC 3339 date-time."),
  })
  .apply(meta({ id: "ReplicasApiKey" }));

export const replicasRoutes: readonly Route[] = [
  defineRoute({
    method: "post",
    path: "/v1/user/api-keys",
    operationId: "replicasCreatePersonalApiKey",
    summary: "Create Personal API Key (Replicas)",
    description: "Creates a personal API key scoped to the authenticated user. Requires JWT authentication.",
    tag: "replicas",
    auth: "person",
    body: CreateRequest,
    errorFormat,
    success: {
      status: 201,
      description: "API key created. The `key` field is only returned once.",
      schema: CreatedKey,
    },
    problems: [400, 413, 415],
    handle: async ({ app, actor }, { body }) => {
      const created = await app.keys.create(actor, { name: body.name });
      return json({ id: created.id, name: created.name, key: created.key, created_at: created.created_at }, 201);
    },
  }),
];
