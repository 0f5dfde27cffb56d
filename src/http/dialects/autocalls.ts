/**
 * Autocalls' API keys (docs.autocalls.ai, a Laravel Sanctum application): create, list and delete
 * under /api/user/api-keys, authenticated by an API key (the page's example) or a session (JWT). The
 * `token` handed out is in Sanctum's `<id>|<secret>` form — the key's id and the latchkey key — and
 * works as a Bearer credential on every route, as does the bare key (keys/legacy.ts). Errors are
 * Laravel's: `{ "message" }`, with `errors` by field for a 422; 401 is exactly
 * `{ "message": "Unauthenticated." }`. As Laravel's validator does, unknown body fields are ignored.
 */
import * as z from "zod/mini";
import { sanctumToken } from "../../keys/legacy";
import { type FieldIssue, issuesByField } from "../../problems";
import { KeyIdParams, described, meta } from "../../schemas";
import { defineRoute, json, type ErrorFormat, type Failure, type Route } from "../route";
import { KeyNameField } from "./shared";

const LaravelError = z
  .object({
    message: z.string(),
    errors: described(z.optional(z.record(z.string(), z.array(z.string()))), "Messages by field (422)."),
  })
  .apply(meta({ id: "AutocallsError" }));

/** Laravel's wording for latchkey's field issues: "The name field is required." */
function laravelMessage({ field, kind, message }: FieldIssue): string {
  if (field === "body") return "The request body must be a JSON object.";
  if (kind === "required") return `The ${field} field is required.`;
  const sentence = message.charAt(0).toLowerCase() + message.slice(1);
  return `The ${field} field ${sentence}${sentence.endsWith(".") ? "" : "."}`;
}

/** Laravel's messages for statuses whose wording a client may match on. */
const MESSAGES: Partial<Record<number, string>> = {
  401: "Unauthenticated.",
  429: "Too Many Attempts.",
  500: "Server Error",
};

function laravelError(failure: Failure) {
  if (failure.status === 422 && failure.issues) {
    const errors = issuesByField(failure.issues.map((issue) => ({ ...issue, message: laravelMessage(issue) })));
    const all = Object.values(errors).flat();
    const more = all.length - 1;
    const message = more > 0 ? `${all[0]} (and ${more} more error${more > 1 ? "s" : ""})` : (all[0] ?? "Invalid data.");
    return { message, errors };
  }
  return { message: MESSAGES[failure.status] ?? failure.detail };
}

const errorFormat: ErrorFormat = { mediaType: "application/json", schema: () => LaravelError, body: laravelError };

const CreateRequest = z
  .object({ name: described(KeyNameField, 'A name/label for the API key (e.g. "Production")') })
  .apply(meta({ id: "AutocallsCreateApiKeyRequest" }));

const Created = z
  .object({
    message: z.literal("API key created successfully."),
    api_key: z.object({
      name: z.string(),
      token: described(z.string(), "`<id>|<key>`. Store it securely: it is shown only once."),
      created_at: described(z.string(), "ISO 8601."),
    }),
  })
  .apply(meta({ id: "AutocallsCreatedApiKey" }));

const ListQuery = z.object({
  cursor: described(z.optional(z.string().check(z.maxLength(200))), "next_cursor from the previous page."),
});

const KeyList = z
  .object({
    data: z.array(
      z.object({
        id: z.uuid(),
        name: z.string(),
        start: described(z.string(), "The key's first characters, for display."),
        created_at: z.string(),
        last_used_at: z.nullable(z.string()),
        expires_at: z.nullable(z.string()),
      }),
    ),
    next_cursor: z.nullable(z.string()),
  })
  .apply(meta({ id: "AutocallsApiKeyList" }));

const Deleted = z
  .object({ message: z.literal("API key deleted successfully.") })
  .apply(meta({ id: "AutocallsDeleted" }));

const PAGE = 100;

export const autocallsRoutes: readonly Route[] = [
  defineRoute({
    method: "post",
    path: "/api/user/api-keys",
    operationId: "autocallsCreateApiKey",
    summary: "Create API key (Autocalls)",
    description: "Generate a new API key for the authenticated user (an API key with keys:write, or a JWT).",
    tag: "autocalls",
    auth: "required",
    body: CreateRequest,
    errorFormat,
    success: { status: 201, description: "Created; `token` is shown only once.", schema: Created },
    problems: [400, 403, 413, 415, 422],
    handle: async ({ app, actor }, { body }) => {
      const created = await app.keys.create(actor, { name: body.name });
      return json(
        {
          message: "API key created successfully.",
          api_key: { name: created.name, token: sanctumToken(created.id, created.key), created_at: created.created_at },
        },
        201,
      );
    },
  }),
  defineRoute({
    method: "get",
    path: "/api/user/api-keys",
    operationId: "autocallsListApiKeys",
    summary: "List API keys (Autocalls)",
    description: "The caller's keys that are not deleted, newest first, 100 a page; never a secret.",
    tag: "autocalls",
    auth: "required",
    query: ListQuery,
    errorFormat,
    success: { status: 200, description: "One page of keys.", schema: KeyList },
    problems: [400, 403],
    handle: async ({ app, actor }, { query }) => {
      const page = await app.keys.list(actor, { limit: PAGE, include_revoked: false, cursor: query.cursor });
      return json({
        data: page.data.map((k) => ({
          id: k.id,
          name: k.name,
          start: k.start,
          created_at: k.created_at,
          last_used_at: k.last_used_at,
          expires_at: k.expires_at,
        })),
        next_cursor: page.next_cursor,
      });
    },
  }),
  defineRoute({
    method: "delete",
    path: "/api/user/api-keys/:id",
    operationId: "autocallsDeleteApiKey",
    summary: "Delete API key (Autocalls)",
    description: "The key stops working at once (it is revoked).",
    tag: "autocalls",
    auth: "required",
    pathParams: KeyIdParams,
    errorFormat,
    success: { status: 200, description: "Deleted.", schema: Deleted },
    problems: [403],
    handle: async ({ app, actor, params }) => {
      await app.keys.revoke(actor, params.id ?? "");
      return json({ message: "API key deleted successfully." });
    },
  }),
];
