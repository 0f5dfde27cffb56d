/**
 * Builds the OpenAPI 3.1 document from the route list and the same zod schemas that validate
 * requests (zod-openapi turns `meta({ id })` schemas into components).
 *
 * Not part of the Worker: zod-openapi and zod's JSON Schema generator would more than double the
 * bundle every cold start pays for. `npm run openapi -- --generate` runs this in Node at build time
 * and commits the result as openapi.generated.ts, which the Worker serves (openapi.ts); the test suite
 * fails while the committed document differs from what this builds (test/http/api.test.ts).
 *
 * It is the contract: the test suite validates every response it receives against it (status,
 * content type, body and headers; test/contract.ts), and `npm run lint:openapi` lints it with
 * Redocly's recommended rules in CI. So every header a response can carry is declared here.
 */
import {
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
  createDocument,
} from "zod-openapi";
import * as z from "zod/mini";
import { license, version } from "../../package.json";
import { Problem, meta } from "../schemas";
import { BOOKMARK_HEADER, BookmarkRequestHeader, BookmarkResponseHeader, takesBookmark } from "./bookmark";
import type { Route } from "./route";

/**
 * A response header. With an `id`, it is declared once under components.headers and referenced
 * (the standard headers would otherwise repeat in every response and make up most of the document).
 */
const header = (description: string, id?: string) =>
  z.string().apply(meta(id ? { description, header: { id } } : { description }));

/** Headers on every response (app.ts sets them). */
const STANDARD_HEADERS = {
  "X-Request-Id": header(
    "The request's id: the client's X-Request-Id when well-formed, else a new one. Every log line of the request carries it.",
    "X-Request-Id",
  ),
  "Cache-Control": header("`no-store` unless the route says otherwise.", "Cache-Control"),
  "X-Content-Type-Options": header("Always `nosniff`.", "X-Content-Type-Options"),
};

/** On the management API's responses (bookmark.ts): declared on every problem, as the problems are shared. */
const BOOKMARK = { [BOOKMARK_HEADER]: BookmarkResponseHeader };

const RETRY_AFTER = header("Seconds to wait before trying again.", "Retry-After");

/** Headers particular to some problem statuses. */
const PROBLEM_HEADERS: Record<number, Record<string, z.ZodMiniType>> = {
  401: {
    "WWW-Authenticate": header("The schemes accepted: `Bearer` (JWT or key) and `Api-Key`.", "WWW-Authenticate"),
  },
  405: { Allow: header("The methods this path accepts.", "Allow") },
  409: { Location: z.optional(header("`idempotent_replay` only: the URL of the key the first request created.")) },
  429: {
    "Retry-After": z.optional(
      header(
        "Seconds to wait before trying again; absent only on `key_usage_exceeded` when waiting will not help (no refill would cover the request).",
      ),
    ),
    "RateLimit-Limit": z.optional(
      header("`key_rate_limited` / `key_usage_exceeded` of a key with rate limits: the tightest limit's size."),
    ),
    "RateLimit-Remaining": z.optional(header("Requests left in that limit now.")),
    "RateLimit-Reset": z.optional(header("Seconds until that limit is full again.")),
  },
  503: { "Retry-After": RETRY_AFTER },
};

const COMMON_PROBLEMS: Record<Route["auth"], number[]> = {
  none: [404, 405, 500, 503],
  required: [401, 404, 405, 429, 500, 503],
  verify: [401, 404, 405, 429, 500, 503],
  person: [401, 404, 405, 429, 500, 503],
};

const SECURITY: Record<Route["auth"], Record<string, string[]>[]> = {
  none: [],
  required: [{ bearer: [] }, { apiKey: [] }],
  // Open unless VERIFY_TOKEN is set: the empty requirement says "or none".
  verify: [{ verifyToken: [] }, {}],
  person: [{ bearer: [] }],
};

const TAGS: Record<string, string> = {
  keys: "The key lifecycle.",
  audit: "The audit log: who changed which key, when, and how.",
  owners: "Per-customer limits: rate limits and credits shared by every key of one owner.",
  verify: "Key verification for services.",
  "root-keys": "Root keys: operators make them; a backend uses one to manage any customer's keys (docs/backends.md).",
  auth: "The caller's identity.",
  meta: "Health and this document.",
  leaks: "Leaked-key reports: GitHub's secret scanning partner endpoint and latchkey's own intake (docs/leaks.md).",
  replicas: "Drop-in for Replicas' `POST /v1/user/api-keys` (JWT only; errors `{ error, details }`).",
  fastapi: "Drop-in for a FastAPI `POST /api/auth/api-keys/` (errors are ProblemDetail).",
  autocalls: "Drop-in for Autocalls' Laravel Sanctum API keys (`token` is `<id>|<key>`; Laravel's error shapes).",
  baseten: "Drop-in for Baseten's `POST /v1/api_keys` (key types; FastAPI's error shapes).",
};

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: "Malformed JSON, query string or header (`code` says which; `errors` names the fields).",
  401: "Missing or invalid credentials (see `WWW-Authenticate`).",
  403: "Authenticated, but the request exceeds the caller's powers (`exceeded` names what).",
  409: "`idempotent_replay`: this Idempotency-Key already created a key (`key_id`, Location); the key cannot be shown again. `conflict`: the key's state forbids this (revoked, expired, or changed by a concurrent request).",
  404: "No such route, or no such key visible to the caller.",
  405: "The path exists, but not with this method (see `Allow`).",
  413: "The body is over 16 KB.",
  415: "The body is not application/json.",
  422: "Validation failed (`errors` maps each field to its messages), or an Idempotency-Key reused with another body.",
  429: "Too many failed authentications (or, on an open /v1/verify, unknown keys) from this client (see `Retry-After`); or the API key is over its own rate limit or out of credits (`code` rate_limited or usage_exceeded, with `Retry-After` and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`).",
  500: "`configuration_error` (e.g. migrations not applied) or `internal_error`; no internals are disclosed.",
  503: "Storage or the identity provider is unavailable (see `Retry-After`).",
};

const sharedProblems = new Map<number, ZodOpenApiResponseObject>();
/**
 * latchkey's problem response for `status`, declared once under components.responses (as `Problem<status>`)
 * and referenced by every operation that answers it with the common description.
 */
function sharedProblem(status: number): ZodOpenApiResponseObject {
  let response = sharedProblems.get(status);
  if (!response) {
    response = {
      id: `Problem${status}`,
      description: PROBLEM_DESCRIPTIONS[status] ?? "A problem.",
      content: { "application/problem+json": { schema: Problem } },
      headers: z.object({ ...STANDARD_HEADERS, ...BOOKMARK, ...PROBLEM_HEADERS[status] }),
    };
    sharedProblems.set(status, response);
  }
  return response;
}

/** The document for `routes` (the build passes every route, every dialect's included). */
export function buildOpenApiDocument(routes: readonly Route[]): ReturnType<typeof createDocument> {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const bookmarked = takesBookmark(route);
    // A malformed Latchkey-Bookmark is a 400 on every route that reads it.
    const statuses = [
      ...new Set([...route.problems, ...COMMON_PROBLEMS[route.auth]!, ...(bookmarked ? [400] : [])]),
    ].sort();
    const responses: Record<string, ZodOpenApiResponseObject> = {
      [String(route.success.status)]: {
        description: route.success.description,
        ...(route.success.schema ? { content: { "application/json": { schema: route.success.schema } } } : {}),
        headers: z.object({ ...STANDARD_HEADERS, ...(bookmarked ? BOOKMARK : {}), ...route.success.headers?.shape }),
      },
    };
    const requestHeaders = bookmarked
      ? z.object({ ...route.requestHeaders?.shape, ...BookmarkRequestHeader.shape })
      : route.requestHeaders;
    const format = route.errorFormat;
    /** The headers of a response with (page) status `status`: those of every latchkey status it stands for. */
    const headersFor = (status: number) =>
      Object.assign(
        {},
        ...statuses
          .filter((latchkeyStatus) => (format?.status?.(latchkeyStatus) ?? latchkeyStatus) === status)
          .map((latchkeyStatus) => PROBLEM_HEADERS[latchkeyStatus]),
      ) as Record<string, z.ZodMiniType>;
    for (const latchkeyStatus of statuses) {
      const status = format?.status?.(latchkeyStatus) ?? latchkeyStatus;
      if (responses[String(status)]) continue;
      const description = route.problemDescriptions?.[latchkeyStatus];
      responses[String(status)] =
        !format && !description
          ? sharedProblem(status)
          : {
              description: description ?? PROBLEM_DESCRIPTIONS[latchkeyStatus] ?? "A problem.",
              content: format
                ? { [format.mediaType]: { schema: format.schema(status) } }
                : { "application/problem+json": { schema: Problem } },
              headers: z.object({ ...STANDARD_HEADERS, ...(bookmarked ? BOOKMARK : {}), ...headersFor(status) }),
            };
    }
    const operation: ZodOpenApiOperationObject = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      security: SECURITY[route.auth],
      ...(route.query || route.pathParams || requestHeaders
        ? {
            requestParams: {
              ...(route.query ? { query: route.query as never } : {}),
              ...(route.pathParams ? { path: route.pathParams } : {}),
              ...(requestHeaders ? { header: requestHeaders } : {}),
            },
          }
        : {}),
      ...(route.body
        ? {
            requestBody: {
              required: route.bodyOptions?.optional !== true,
              content: { "application/json": { schema: route.body } },
            },
          }
        : {}),
      responses: responses as ZodOpenApiResponsesObject,
    };
    paths[path] = { ...paths[path], [route.method]: operation };
  }

  return createDocument({
    openapi: "3.1.0",
    info: {
      title: "latchkey",
      version,
      license: { name: license, identifier: license },
      description:
        "API keys as a service: create (shown once), list, scope, expire and revoke keys, and verify them on every request. `HEAD` is accepted wherever `GET` is. Every problem (RFC 9457) carries a stable `code`: see the Problem schema.",
    },
    servers: [
      {
        url: "https://{host}",
        description: "Your deployment.",
        variables: { host: { default: "latchkey.your-domain.dev", description: "Where you deployed latchkey." } },
      },
    ],
    tags: [...new Set(routes.map((route) => route.tag))].map((name) => ({
      name,
      ...(TAGS[name] ? { description: TAGS[name] } : {}),
    })),
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description:
            "`Authorization: Bearer <JWT>` for people, or `Bearer <API key>` for machines. Generated clients send `Bearer ` themselves: give them the bare token or key.",
        },
        apiKey: {
          type: "apiKey",
          in: "header",
          name: "Authorization",
          description:
            "`Authorization: Api-Key <API key>`. An apiKey scheme sends its value as given, so the value must include the scheme word: `Api-Key lk_...` (the x-value-prefix). The bare key is refused.",
          "x-value-prefix": "Api-Key ",
        },
        verifyToken: {
          type: "http",
          scheme: "bearer",
          description:
            "`Authorization: Bearer <VERIFY_TOKEN>`: required by POST /v1/verify when the deployment sets VERIFY_TOKEN; otherwise the route is open.",
        },
      },
    },
    paths,
  });
}
