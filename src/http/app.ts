/**
 * The itty-router application. A request flows one way: route -> authenticate -> validate ->
 * service. Unknown paths get 404, known paths with another method 405 (with Allow), and every
 * response gets `X-Content-Type-Options: nosniff`, the request's `X-Request-Id` and, unless a route
 * says otherwise, `Cache-Control: no-store`. HEAD is served wherever GET is, by the GET handler,
 * without the body (RFC 9110 §9.3.2).
 */
import { type IRequest, Router } from "itty-router";
import type { z } from "zod";
import { AuthenticationError } from "../auth/errors";
import { authenticate } from "../auth/credentials";
import { createContext } from "../context";
import type { Env } from "../env";
import type { Actor } from "../model";
import { ValidationError } from "../service/errors";
import { currentRequestId, requestIdFrom, withRequestId } from "../log";
import { fieldErrors } from "../schemas";
import { readJsonBody } from "./body";
import { countAuthFailure } from "./limits";
import { HttpError, errorToProblem, problem } from "./problem";
import type { RequestHeaders, Route } from "./route";

type Args = [Env, ExecutionContext];

function parse(schema: z.ZodType, value: unknown, source: ValidationError["source"]): unknown {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(fieldErrors(result.error), source);
  return result.data;
}

/** The values of the headers `schema` declares, by their declared names. */
function declaredHeaders(schema: z.ZodObject, request: Request): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of Object.keys(schema.shape)) out[name] = request.headers.get(name) ?? undefined;
  return out;
}

function handlerFor(route: Route) {
  return async (request: IRequest, env: Env, exec: ExecutionContext): Promise<Response> => {
    const app = createContext(env, exec);
    let actor: Actor | null = null;
    if (route.auth === "required") {
      try {
        actor = await authenticate(request.headers.get("authorization"), app.config, app.keys);
      } catch (error) {
        if (error instanceof AuthenticationError) {
          const limited = await countAuthFailure(request, env);
          if (limited) return limited;
        }
        throw error;
      }
    }
    const query = route.query ? parse(route.query, { ...request.query }, "query") : undefined;
    const headers = route.requestHeaders
      ? (parse(route.requestHeaders, declaredHeaders(route.requestHeaders, request), "header") as RequestHeaders)
      : {};
    const body = route.body ? parse(route.body, await readJsonBody(request), "body") : undefined;
    return route.handle({ request, env, app, actor, params: request.params }, { query, body, headers });
  };
}

function setStandardHeaders(headers: Headers, requestId: string): void {
  headers.set("X-Content-Type-Options", "nosniff");
  headers.set("X-Request-Id", requestId);
  if (!headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
}

/** Sets the headers in place: every response is made here, with mutable headers; copies only if not. */
function withStandardHeaders(response: Response, request: IRequest): Response {
  const requestId = currentRequestId() ?? "";
  if (request.method === "HEAD" && response.body !== null) response = new Response(null, response);
  try {
    setStandardHeaders(response.headers, requestId);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    setStandardHeaders(copy.headers, requestId);
    return copy;
  }
}

export function createApp(routes: readonly Route[]) {
  const router = Router<IRequest, Args>({
    catch: (error: unknown) => errorToProblem(error),
    finally: [
      (response: unknown, request: IRequest) =>
        withStandardHeaders(
          response instanceof Response ? response : errorToProblem(new Error("no response")),
          request,
        ),
    ],
  });
  for (const route of routes) {
    const handler = handlerFor(route);
    router[route.method](route.path, handler);
    if (route.method === "get") router.head(route.path, handler);
  }

  const patterns = router.routes.map(([method, pattern]) => ({ method, pattern }));
  router.all("*", (request: IRequest) => {
    const { pathname } = new URL(request.url);
    const allowed = new Set(
      patterns.filter((p) => p.method !== "ALL" && p.pattern.test(pathname)).map((p) => p.method),
    );
    if (allowed.size === 0) throw new HttpError("not_found", { detail: `No route for ${pathname}` });
    return problem("method_not_allowed", {
      detail: `Use ${[...allowed].join(", ")} for this path`,
      headers: { Allow: [...allowed].join(", ") },
    });
  });
  return {
    routes: router.routes,
    /** Serves one request; every log line written meanwhile carries its request id. */
    fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
      const requestId = requestIdFrom(request.headers.get("x-request-id"));
      return withRequestId(requestId, () => router.fetch(request, env, ctx));
    },
  };
}
