/**
 * The shape of one HTTP route: its method and path, its schemas, its documented responses and its
 * handler. The router (app.ts) and the OpenAPI document (openapi.ts) are both built from the same
 * list, so a route cannot be served undocumented or documented unserved.
 */
import type * as z from "zod/mini";
import type { FieldIssue } from "../problems";
import type { BodyOptions } from "./body";
import type { AppContext } from "../context";
import type { Env } from "../env";
import type { Actor } from "../model";

export type Method = "get" | "post" | "put" | "patch" | "delete";
/**
 * `verify`: open, unless VERIFY_TOKEN is set (then that service credential is required).
 * `person`: a JWT only (an API key is refused unread).
 */
export type AuthMode = "none" | "required" | "verify" | "person";

type Parsed<S> = S extends z.ZodMiniType ? z.output<S> : undefined;

export interface RouteContext<A extends AuthMode> {
  readonly request: Request;
  readonly env: Env;
  readonly app: AppContext;
  readonly actor: A extends "none" ? null : Actor;
  readonly params: Record<string, string>;
  /** Every route the router serves (for the OpenAPI document). */
  readonly routes: readonly Route[];
}

/** A failure in latchkey's terms (what its problem document says), for a route that answers in its own shape. */
export interface Failure {
  readonly status: number;
  /** The HTTP reason phrase of the status ("Unauthorized"), as the vendors' pages use it. */
  readonly title: string;
  readonly detail: string;
  /** Invalid fields, by path, with their messages. */
  readonly errors: Readonly<Record<string, string[]>> | null;
  /** The same issues, each with its kind (what a dialect maps to its own wording). */
  readonly issues: readonly FieldIssue[] | null;
  /** Retry-After, WWW-Authenticate, Allow and RateLimit-*, kept whatever the shape. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * A route's own error shape (a dialect's page): every failure of the route — authentication,
 * validation, body, routing, service, storage, unexpected — is rendered by it instead of as a
 * latchkey problem.
 */
export interface ErrorFormat {
  readonly mediaType: string;
  /** The status the page uses for one of latchkey's (default: the same). */
  readonly status?: (status: number) => number;
  /** The body schema for a (page) status, for the OpenAPI document. */
  readonly schema: (status: number) => z.ZodMiniType;
  /** The body for a failure whose status is already the page's. */
  readonly body: (failure: Failure) => unknown;
}

export interface ResponseDoc {
  readonly status: number;
  readonly description: string;
  readonly schema?: z.ZodMiniType;
  readonly headers?: z.ZodMiniObject;
}

export interface RouteDefinition<
  A extends AuthMode,
  Q extends z.ZodMiniType | undefined,
  B extends z.ZodMiniType | undefined,
> {
  readonly method: Method;
  /** itty-router path, e.g. `/v1/keys/:id`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  readonly auth: A;
  readonly query?: Q;
  readonly body?: B;
  /** How the body may arrive besides the default (application/json, at most 16 KB). */
  readonly bodyOptions?: BodyOptions;
  /** Errors in this shape instead of latchkey's problems. */
  readonly errorFormat?: ErrorFormat;
  readonly pathParams?: z.ZodMiniObject;
  /** Request headers the route reads (documented; the handler parses them). */
  readonly requestHeaders?: z.ZodMiniObject;
  readonly success: ResponseDoc;
  /** Descriptions of problem statuses particular to this route, by status. */
  readonly problemDescriptions?: Readonly<Record<number, string>>;
  /** Problem statuses this route can answer besides the common ones. */
  readonly problems: readonly number[];
  readonly handle: (
    ctx: RouteContext<A>,
    input: { readonly query: Parsed<Q>; readonly body: Parsed<B>; readonly headers: RequestHeaders },
  ) => Promise<Response> | Response;
}

/** The request headers a route declares (requestHeaders), parsed; absent ones are undefined. */
export type RequestHeaders = Readonly<Record<string, string | undefined>>;

/** A route with its types erased, for the router and the document. */
export type Route = Omit<RouteDefinition<AuthMode, z.ZodMiniType | undefined, z.ZodMiniType | undefined>, "handle"> & {
  readonly handle: (
    ctx: RouteContext<AuthMode>,
    input: { query: unknown; body: unknown; headers: RequestHeaders },
  ) => Promise<Response> | Response;
};

export function defineRoute<
  A extends AuthMode,
  Q extends z.ZodMiniType | undefined = undefined,
  B extends z.ZodMiniType | undefined = undefined,
>(definition: RouteDefinition<A, Q, B>): Route {
  return definition as unknown as Route;
}

export function json(data: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(data), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}
