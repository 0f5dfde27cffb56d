/**
 * The itty-router application. A request flows one way: route -> authenticate -> validate ->
 * service. Unknown paths get 404, known paths with another method 405 (with Allow); a route with
 * its own error format (a dialect's) answers every failure in that shape. Every response gets
 * `X-Content-Type-Options: nosniff`, the request's `X-Request-Id` and, unless a route says otherwise,
 * `Cache-Control: no-store`. HEAD is served wherever GET is, by the GET handler, without the body
 * (RFC 9110 §9.3.2). CORS preflights are answered before routing, and API responses get their CORS
 * headers last, errors included (cors.ts).
 */
import { type IRequest, Router } from "itty-router";
import type * as z from "zod/mini";
import { AuthenticationError } from "../auth/errors";
import { authenticate, authenticatePerson, authenticateVerifyCaller } from "../auth/credentials";
import { type Config, loadConfig } from "../config";
import { createContext } from "../context";
import type { Env } from "../env";
import type { Actor } from "../model";
import { ValidationError } from "../service/errors";
import { currentRequestId, requestIdFrom, withRequestId } from "../log";
import { parseInput } from "../schemas";
import { readJsonBody } from "./body";
import { openSession, replicated, takesBookmark, withBookmark } from "./bookmark";
import { type CorsList, corsListOf, corsListOfUnrouted, preflight, setCorsHeaders } from "./cors";
import { renderFailure } from "./failure";
import { clientOf, countAuthFailure, overAuthFailureLimit, tooManyFailures } from "./limits";
import { HttpError, errorToProblem, problem } from "./problem";
import type { RequestHeaders, Route } from "./route";
import { mountUi } from "./ui";

type Args = [Env, ExecutionContext];

function parse(schema: z.ZodMiniType, value: unknown, source: ValidationError["source"]): unknown {
  const result = parseInput(schema, value);
  if (!result.success) throw new ValidationError(result.issues, source);
  return result.data;
}

/** The values of the headers `schema` declares, by their declared names. */
function declaredHeaders(schema: z.ZodMiniObject, request: Request): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of Object.keys(schema.shape)) out[name] = request.headers.get(name) ?? undefined;
  return out;
}

/** The longest client address and User-Agent kept (for the audit log). */
const MAX_IP = 64;
const MAX_USER_AGENT = 256;

function handlerFor(route: Route, routes: readonly Route[]) {
  const handle = async (
    request: IRequest,
    env: Env,
    exec: ExecutionContext,
    opened?: ReturnType<typeof openSession>,
  ): Promise<Response> => {
    const ip = request.headers.get("cf-connecting-ip")?.slice(0, MAX_IP) ?? null;
    const origin = () => ({ ip, userAgent: request.headers.get("user-agent")?.slice(0, MAX_USER_AGENT) ?? null });
    const app = createContext(env, exec, origin, opened?.session);
    let actor: Actor | null = null;
    const authenticates =
      route.auth === "required" ||
      route.auth === "person" ||
      (route.auth === "verify" && app.config.verifyAccess.kind !== "open");
    if (authenticates) {
      const client = clientOf(request);
      // Over its failure limit, a client is judged from memory alone: its 429 costs no storage lookup.
      const shed = overAuthFailureLimit(client);
      const authorization = request.headers.get("authorization");
      try {
        if (route.auth === "verify") await authenticateVerifyCaller(authorization, app.config.verifyAccess);
        else if (route.auth === "person") actor = await authenticatePerson(authorization, app.config);
        else {
          actor = await authenticate(authorization, app.config, app.keys, {
            ip: ip ?? undefined,
            fromMemoryOnly: shed,
            rootKeys: app.rootKeys,
          });
        }
      } catch (error) {
        if (error instanceof AuthenticationError) {
          const limited = shed ? tooManyFailures() : await countAuthFailure(client, env);
          if (limited) throw limited;
        }
        throw error;
      }
    }
    if (opened?.invalid) throw opened.invalid;
    const query = route.query ? parse(route.query, { ...request.query }, "query") : undefined;
    const headers = route.requestHeaders
      ? (parse(route.requestHeaders, declaredHeaders(route.requestHeaders, request), "header") as RequestHeaders)
      : {};
    const signed = route.bodyOptions?.signed;
    const checkBytes = signed && ((bytes: Uint8Array) => signed(bytes, request, app));
    const body = route.body
      ? parse(route.body, await readJsonBody(request, route.bodyOptions, checkBytes), "body")
      : undefined;
    const response = await route.handle(
      { request, env, app, actor, params: request.params, routes },
      { query, body, headers },
    );
    const timing = app.lookups?.serverTiming();
    if (timing) response.headers.set("Server-Timing", timing);
    return response;
  };
  // The management API: in a request session, and every answer carries its bookmark (bookmark.ts).
  if (takesBookmark(route)) {
    return async (request: IRequest, env: Env, exec: ExecutionContext): Promise<Response> => {
      if (!replicated(loadConfig(env))) return handle(request, env, exec);
      const opened = openSession(request, env.DB);
      let response: Response;
      try {
        response = await handle(request, env, exec, opened);
      } catch (error) {
        response = errorToProblem(error);
      }
      return withBookmark(response, opened.session);
    };
  }
  const format = route.errorFormat;
  if (!format) return handle;
  return async (request: IRequest, env: Env, exec: ExecutionContext): Promise<Response> => {
    try {
      return await handle(request, env, exec);
    } catch (error) {
      return renderFailure(format, error);
    }
  };
}

function setStandardHeaders(headers: Headers, requestId: string): void {
  headers.set("X-Content-Type-Options", "nosniff");
  headers.set("X-Request-Id", requestId);
  if (!headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
}

/**
 * Sets the headers in place: every response is made here, with mutable headers; copies only if not.
 * `corsList`: the CORS list of the route that answered (cors.ts).
 */
function withStandardHeaders(
  response: Response,
  request: IRequest,
  env: Env,
  corsList: (request: IRequest) => CorsList | null,
): Response {
  const requestId = currentRequestId() ?? "";
  if (request.method === "HEAD" && response.body !== null) response = new Response(null, response);
  const set = (headers: Headers) => {
    setStandardHeaders(headers, requestId);
    setCorsHeaders(headers, request, corsList(request), loadConfig(env));
  };
  try {
    set(response.headers);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    set(copy.headers);
    return copy;
  }
}

export function createApp(routes: readonly Route[]) {
  const router = Router<IRequest, Args>({
    before: [
      (request: IRequest, env: Env) =>
        request.method === "OPTIONS" ? corsPreflight(request, loadConfig(env)) : undefined,
    ],
    catch: (error: unknown) => errorToProblem(error),
    finally: [
      (response: unknown, request: IRequest, env: Env) =>
        withStandardHeaders(
          response instanceof Response ? response : errorToProblem(new Error("no response")),
          request,
          env,
          corsListOfRequest,
        ),
    ],
  });
  // The Route behind each of the router's entries, in order (GET routes also answer HEAD); the UI's
  // entries, mounted last, have none.
  const routeOf: Route[] = [];
  for (const route of routes) {
    const handler = handlerFor(route, routes);
    router[route.method](route.path, handler);
    routeOf.push(route);
    if (route.method === "get") {
      router.head(route.path, handler);
      routeOf.push(route);
    }
  }
  mountUi(router);

  // `route` is undefined for the UI's patterns.
  const patterns = router.routes.map(([method, pattern], i) => ({ method, pattern, route: routeOf[i] }));
  /** The routes that serve `pathname`, with any method. */
  const matchingFor = (pathname: string) => patterns.filter((p) => p.method !== "ALL" && p.pattern.test(pathname));
  /**
   * The CORS list of the route that serves `pathname` with `method` (a preflight's requested method),
   * as the router would pick it; with no such route, that of the first route serving the path with
   * another method (the 405 the catch-all answers), else of the path itself (the 404).
   */
  const corsListOfPath = (pathname: string, method: string | null): CorsList | null => {
    const matching = matchingFor(pathname);
    const served = matching.find((p) => p.method === method) ?? matching[0];
    if (!served) return corsListOfUnrouted(pathname);
    return served.route ? corsListOf(served.route) : null;
  };
  /** Each route's list by method and pattern (the router's `request.route`), so the hot path parses no URL. */
  const listByRoute = new Map<string, CorsList | null>();
  for (const [i, [method, , , pattern]] of router.routes.entries()) {
    const route = routeOf[i];
    if (route) listByRoute.set(`${method} ${pattern}`, corsListOf(route));
  }
  function corsListOfRequest(request: IRequest): CorsList | null {
    if (request.route && request.route !== "*") return listByRoute.get(`${request.method} ${request.route}`) ?? null;
    // A preflight (answered before routing) or the catch-all: the same choice from the route table.
    const requested = request.method === "OPTIONS" ? request.headers.get("access-control-request-method") : null;
    return corsListOfPath(new URL(request.url).pathname, requested);
  }
  const corsPreflight = (request: IRequest, config: Config) => {
    const { pathname } = new URL(request.url);
    const methods = [...new Set(matchingFor(pathname).map((p) => p.method))];
    const list = corsListOfPath(pathname, request.headers.get("access-control-request-method"));
    return preflight(request, list, methods, config) ?? undefined;
  };
  router.all("*", (request: IRequest) => {
    const { pathname } = new URL(request.url);
    const matching = matchingFor(pathname);
    const allowed = new Set(matching.map((p) => p.method));
    if (allowed.size === 0) throw new HttpError("not_found", { detail: `No route for ${pathname}` });
    const error = new HttpError("method_not_allowed", {
      detail: `Use ${[...allowed].join(", ")} for this path`,
      headers: { Allow: [...allowed].join(", ") },
    });
    // A path of a dialect answers in its page's shape.
    const format = matching.find((p) => p.route?.errorFormat)?.route?.errorFormat;
    return format ? renderFailure(format, error) : errorToProblem(error);
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
