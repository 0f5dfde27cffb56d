/**
 * Baseten's "Create an API key" (docs.baseten.co, POST /v1/api_keys): `Authorization: Api-Key <key>`
 * (Bearer keys and JWTs too), body CreateAPIKeyRequestV1, 200 `{ "api_key": "<key>" }`. The page's
 * curl sends its JSON with `--data` and no Content-Type, so this route also reads JSON sent as
 * application/x-www-form-urlencoded (and only this route).
 *
 * Each type is a latchkey key (the table in docs/permissions.md); the service decides who may create it, as for any
 * create: a person may create PERSONAL keys, and WORKSPACE_* keys for the workspace their JWT names
 * (when workspace roles are configured, only if they may manage its keys); a key with keys:write may
 * create keys of its own owner no stronger than itself. The page documents no error shape; the API is
 * FastAPI's (pydantic schemas), so errors are FastAPI's: `{ "detail": "..." }`, and for a 422
 * `{ "detail": [{ "type", "loc", "msg" }] }`. As pydantic does, unknown body fields are ignored.
 */
import * as z from "zod/mini";
import type { FieldIssue } from "../../problems";
import { CreateKeyRequest, type CreateKeyInput, described, meta } from "../../schemas";
import { defineRoute, json, type ErrorFormat, type Failure, type Route } from "../route";
import { KeyNameField } from "./shared";

const TYPES = ["PERSONAL", "WORKSPACE_MANAGE_ALL", "WORKSPACE_EXPORT_METRICS", "WORKSPACE_INVOKE"] as const;
type KeyType = (typeof TYPES)[number];
const MODEL_SCOPED: readonly KeyType[] = ["WORKSPACE_EXPORT_METRICS", "WORKSPACE_INVOKE"];

/** Each type as a latchkey key. `model_ids` become its resources; absent, a child inherits its parent's. */
const AS_KEY: Record<KeyType, Pick<CreateKeyInput, "owner" | "scopes">> = {
  PERSONAL: { owner: "user", scopes: ["*"] },
  WORKSPACE_MANAGE_ALL: { owner: "workspace", scopes: ["*"] },
  WORKSPACE_EXPORT_METRICS: { owner: "workspace", scopes: ["metrics:read"] },
  WORKSPACE_INVOKE: { owner: "workspace", scopes: ["models:invoke"] },
};

/** The page's fields for latchkey's, in error locations. */
const FIELDS: Record<string, string> = { owner: "type", scopes: "type", resources: "model_ids" };

const ValidationDetail = z.array(
  z.object({ type: z.string(), loc: z.array(z.union([z.string(), z.number()])), msg: z.string() }),
);
const HttpErrorBody = z.object({ detail: z.string() }).apply(meta({ id: "BasetenError" }));
const ValidationErrorBody = z.object({ detail: ValidationDetail }).apply(meta({ id: "BasetenValidationError" }));

function fastapiError(failure: Failure) {
  if (failure.status !== 422 || !failure.issues) return { detail: failure.detail };
  return {
    detail: Object.values(byField(failure.issues)).flatMap((issues) =>
      issues.map(({ field, kind, message }) => {
        const [head = "body", ...rest] = field.split(".");
        const loc = [
          "body",
          ...(field === "body" ? [] : [FIELDS[head] ?? head, ...rest.map((p) => (/^\d+$/.test(p) ? Number(p) : p))]),
        ];
        return kind === "required"
          ? { type: "missing", loc, msg: "Field required" }
          : { type: "value_error", loc, msg: message };
      }),
    ),
  };
}

/** Issues grouped by field, fields in the order problems' `errors` list them. */
function byField(issues: readonly FieldIssue[]): Record<string, FieldIssue[]> {
  const out = Object.create(null) as Record<string, FieldIssue[]>;
  for (const issue of issues) (out[issue.field] ??= []).push(issue);
  return out;
}

const errorFormat: ErrorFormat = {
  mediaType: "application/json",
  schema: (status) => (status === 422 ? ValidationErrorBody : HttpErrorBody),
  body: fastapiError,
};

const CreateAPIKeyRequestV1 = z
  .object({
    name: described(z.optional(z.nullable(KeyNameField)), "Optional name for the API key"),
    type: described(
      z.enum(TYPES, { error: (issue) => (issue.input === undefined ? "Required" : undefined) }),
      "Type of the API key.",
    ),
    model_ids: described(
      CreateKeyRequest.shape.resources,
      "Model ids to limit the key to; only for WORKSPACE_EXPORT_METRICS and WORKSPACE_INVOKE.",
    ),
  })
  .check(
    z.superRefine((request, ctx) => {
      if (request.model_ids != null && !MODEL_SCOPED.includes(request.type)) {
        ctx.addIssue({
          code: "custom",
          path: ["model_ids"],
          message: `Only for ${MODEL_SCOPED.join(" and ")} keys`,
        });
      }
    }),
  )
  .apply(meta({ id: "BasetenCreateAPIKeyRequestV1" }));

const APIKeyV1 = z
  .object({ api_key: described(z.string(), "The API key string") })
  .apply(meta({ id: "BasetenAPIKeyV1" }));

export const basetenRoutes: readonly Route[] = [
  defineRoute({
    method: "post",
    path: "/v1/api_keys",
    operationId: "basetenCreateApiKey",
    summary: "Creates an API key (Baseten)",
    description:
      "Creates an API key with the provided name and type. The API key is returned in the response. The body may also arrive as application/x-www-form-urlencoded holding JSON (what `curl --data` sends).",
    tag: "baseten",
    auth: "required",
    body: CreateAPIKeyRequestV1,
    bodyOptions: { formEncodedJson: true },
    errorFormat,
    success: { status: 200, description: "The key; shown only in this response.", schema: APIKeyV1 },
    problems: [400, 403, 413, 415, 422],
    handle: async ({ app, actor }, { body }) => {
      const created = await app.keys.create(actor, {
        name: body.name ?? body.type,
        ...AS_KEY[body.type],
        ...(body.model_ids != null ? { resources: body.model_ids } : {}),
      });
      return json({ api_key: created.key });
    },
  }),
];
