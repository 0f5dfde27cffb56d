/**
 * The OpenAPI 3.1 document, generated from the route list and the same zod schemas that validate
 * requests (zod-openapi turns `.meta({ id })` schemas into components). Built once per isolate.
 */
import {
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
  createDocument,
} from "zod-openapi";
import { Problem } from "../schemas";
import type { Route } from "./route";

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
  verify: "Key verification for services.",
  auth: "The caller's identity.",
  meta: "Health and this document.",
  replicas: "Drop-in for Replicas' `POST /v1/user/api-keys` (JWT only; errors `{ error, details }`).",
  fastapi: "Drop-in for a FastAPI `POST /api/auth/api-keys/` (errors are ProblemDetail).",
  autocalls: "Drop-in for Autocalls' Laravel Sanctum API keys (`token` is `<id>|<key>`; Laravel's error shapes).",
  baseten: "Drop-in for Baseten's `POST /v1/api_keys` (key types; FastAPI's error shapes).",
};

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: "Malformed JSON or query string (the `errors` member names the fields).",
  401: "Missing or invalid credentials (see `WWW-Authenticate`).",
  403: "Authenticated, but the request exceeds the caller's powers (`exceeded` names what).",
  404: "No such route, or no such key visible to the caller.",
  405: "The path exists, but not with this method (see `Allow`).",
  409: "The key's state forbids this (revoked, expired, or changed by a concurrent request).",
  413: "The body is over 16 KB.",
  415: "The body is not application/json.",
  422: "Validation failed; `errors` maps each field to its messages.",
  429: "Too many failed authentications (or, on an open /v1/verify, unknown keys) from this client (see `Retry-After`).",
  500: "An unexpected error; no internals are disclosed.",
  503: "Storage is unavailable (see `Retry-After`).",
};

/** One document per route list (the mounted dialects decide the list). */
const cached = new WeakMap<readonly Route[], ReturnType<typeof createDocument>>();

export function openApiDocument(routes: readonly Route[]): ReturnType<typeof createDocument> {
  let document = cached.get(routes);
  if (!document) {
    document = build(routes);
    cached.set(routes, document);
  }
  return document;
}

function build(routes: readonly Route[]) {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const statuses = [...new Set([...route.problems, ...COMMON_PROBLEMS[route.auth]!])].sort();
    const responses: Record<string, ZodOpenApiResponseObject> = {
      [String(route.success.status)]: {
        description: route.success.description,
        ...(route.success.schema ? { content: { "application/json": { schema: route.success.schema } } } : {}),
        ...(route.success.headers ? { headers: route.success.headers } : {}),
      },
    };
    const format = route.errorFormat;
    for (const latchkeyStatus of statuses) {
      const status = format?.status?.(latchkeyStatus) ?? latchkeyStatus;
      if (responses[String(status)]) continue;
      responses[String(status)] = {
        description: PROBLEM_DESCRIPTIONS[latchkeyStatus] ?? "A problem.",
        content: format
          ? { [format.mediaType]: { schema: format.schema(status) } }
          : { "application/problem+json": { schema: Problem } },
      };
    }
    const operation: ZodOpenApiOperationObject = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      security: SECURITY[route.auth],
      ...(route.query || route.pathParams
        ? {
            requestParams: {
              ...(route.query ? { query: route.query as never } : {}),
              ...(route.pathParams ? { path: route.pathParams } : {}),
            },
          }
        : {}),
      ...(route.body
        ? { requestBody: { required: true, content: { "application/json": { schema: route.body } } } }
        : {}),
      responses: responses as ZodOpenApiResponsesObject,
    };
    paths[path] = { ...paths[path], [route.method]: operation };
  }

  return createDocument({
    openapi: "3.1.0",
    info: {
      title: "latchkey",
      version: "1.0.0",
      description:
        "API keys as a service: create (shown once), list, scope, expire and revoke keys, and verify them on every request.",
    },
    tags: [...new Set(routes.map((route) => route.tag))].map((name) => ({
      name,
      ...(TAGS[name] ? { description: TAGS[name] } : {}),
    })),
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "`Authorization: Bearer <JWT>` for people, or `Bearer <API key>` for machines.",
        },
        apiKey: {
          type: "apiKey",
          in: "header",
          name: "Authorization",
          description: "`Authorization: Api-Key <API key>` (the Baseten-style scheme).",
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
