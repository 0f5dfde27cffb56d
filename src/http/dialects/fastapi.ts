/**
 * A FastAPI service's "Create My Api Key" (POST /api/auth/api-keys/, also served without the trailing
 * slash): Bearer JWT or a key with keys:write. Success is exactly the page's ApiKeyCreateResponse
 * `{ id, key, name, created_at }`; every error is its ProblemDetail, with `title`, `status` and
 * `detail` always present. As pydantic does by default, unknown body fields are ignored.
 */
import * as z from "zod/mini";
import { defineRoute, json, type ErrorFormat, type Route } from "../route";
import { described, meta } from "../../schemas";
import { KeyNameField, describeFields } from "./shared";

const ProblemDetail = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().check(z.int()),
    detail: z.string(),
    errors: described(z.optional(z.record(z.string(), z.array(z.string()))), "Invalid fields (422)."),
  })
  .apply(meta({ id: "FastApiProblemDetail" }));

const errorFormat: ErrorFormat = {
  mediaType: "application/problem+json",
  schema: () => ProblemDetail,
  body: (failure) => ({
    type: "about:blank",
    title: failure.title,
    status: failure.status,
    detail: failure.errors ? describeFields(failure.errors) : failure.detail,
    ...(failure.errors ? { errors: failure.errors } : {}),
  }),
};

const ApiKeyCreateRequest = z
  .object({ name: described(KeyNameField, "Human-readable label for the API key") })
  .apply(meta({ id: "FastApiApiKeyCreateRequest" }));

const ApiKeyCreateResponse = z
  .object({
    id: z.uuid(),
    key: described(z.string(), "The API key secret (shown only once)"),
    name: z.string(),
    created_at: z.iso.datetime({ offset: true }),
  })
  .apply(meta({ id: "FastApiApiKeyCreateResponse" }));

const create = (path: string, operationId: string): Route =>
  defineRoute({
    method: "post",
    path,
    operationId,
    summary: "Create My Api Key (FastAPI)",
    description: "Create an API key for the current user. The raw key is returned only in this response.",
    tag: "fastapi",
    auth: "required",
    body: ApiKeyCreateRequest,
    errorFormat,
    success: { status: 201, description: "Successful Response", schema: ApiKeyCreateResponse },
    problems: [400, 403, 413, 415, 422],
    handle: async ({ app, actor }, { body }) => {
      const created = await app.keys.create(actor, { name: body.name });
      return json({ id: created.id, key: created.key, name: created.name, created_at: created.created_at }, 201);
    },
  });

export const fastapiRoutes: readonly Route[] = [
  // The vendor's own URL, trailing slash included: the one exception to the OpenAPI lint's rules,
  // explained in .redocly.lint-ignore.yaml.
  create("/api/auth/api-keys/", "fastapiCreateMyApiKey"),
  create("/api/auth/api-keys", "fastapiCreateMyApiKeyNoSlash"),
];
