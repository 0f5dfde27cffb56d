/**
 * The itty-router application. A request flows one way: route -> authenticate -> validate ->
 * service. Unknown paths get 404, known paths with another method 405 (with Allow), and every
 * response gets `X-Content-Type-Options: nosniff` and, unless a route says otherwise,
 * `Cache-Control: no-store`. CORS preflights are answered before routing, and API responses get their
 * CORS headers last, errors included (cors.ts).
 */
import { type IRequest, Router } from "itty-router";
import type { z } from "zod";
import { AuthenticationError } from "../auth/errors";
import { authenticate } from "../auth/credentials";
import { type Config, loadConfig } from "../config";
import { createContext } from "../context";
import type { Env } from "../env";
import type { Actor } from "../model";
import { ValidationError } from "../service/errors";
import { fieldErrors } from "../schemas";
import { readJsonBody } from "./body";
import { preflight, setCorsHeaders } from "./cors";
import { countAuthFailure } from "./limits";
import { HttpError, errorToProblem, problem } from "./problem";
import type { Route } from "./route";
import { mountUi } from "./ui";

type Args = [Env, ExecutionContext];

function parse(schema: z.ZodType, value: unknown, source: "body" | "query"): unknown {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(fieldErrors(result.error), source);
  return result.data;
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
    const body = route.body ? parse(route.body, await readJsonBody(request), "body") : undefined;
    return route.handle({ request, env, app, actor, params: request.params }, { query, body });
  };
}

function setStandardHeaders(headers: Headers): void {
  headers.set("X-Content-Type-Options", "nosniff");
  if (!headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
}

/** Sets the headers in place: every response is made here, with mutable headers; copies only if not. */
function withStandardHeaders(response: Response, request: IRequest, env: Env): Response {
  const set = (headers: Headers) => {
    setStandardHeaders(headers);
    // The matched route's pattern names the path without parsing the URL again (the hot path pays
    // nothing); preflights and the catch-all ("*") parse it.
    const path = request.route && request.route !== "*" ? request.route : new URL(request.url).pathname;
    setCorsHeaders(headers, request, path, loadConfig(env));
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
        ),
    ],
  });
  for (const route of routes) router[route.method](route.path, handlerFor(route));
  mountUi(router);

  const patterns = router.routes.map(([method, pattern]) => ({ method, pattern }));
  /** The methods some route serves `pathname` with. */
  const methodsFor = (pathname: string): Set<string> =>
    new Set(patterns.filter((p) => p.method !== "ALL" && p.pattern.test(pathname)).map((p) => p.method));
  const corsPreflight = (request: IRequest, config: Config) => {
    const { pathname } = new URL(request.url);
    return preflight(request, pathname, [...methodsFor(pathname)], config) ?? undefined;
  };
  router.all("*", (request: IRequest) => {
    const { pathname } = new URL(request.url);
    const allowed = methodsFor(pathname);
    if (allowed.size === 0) throw new HttpError(404, { detail: `No route for ${pathname}` });
    return problem(405, {
      detail: `Use ${[...allowed].join(", ")} for this path`,
      headers: { Allow: [...allowed].join(", ") },
    });
  });
  return router;
}
