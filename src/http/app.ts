/**
 * The itty-router application. A request flows one way: route -> authenticate -> validate ->
 * service. Unknown paths get 404, known paths with another method 405 (with Allow), and every
 * response gets `X-Content-Type-Options: nosniff` and, unless a route says otherwise,
 * `Cache-Control: no-store`.
 */
import { type IRequest, Router } from "itty-router";
import type { z } from "zod";
import { AuthenticationError } from "../auth/errors";
import { authenticate } from "../auth/credentials";
import { createContext } from "../context";
import type { Env } from "../env";
import type { Actor } from "../model";
import { ValidationError } from "../service/errors";
import { fieldErrors } from "../schemas";
import { readJsonBody } from "./body";
import { countAuthFailure } from "./limits";
import { HttpError, errorToProblem, problem } from "./problem";
import type { Route } from "./route";

type Args = [Env, ExecutionContext];

function parse(schema: z.ZodType, value: unknown, source: "body" | "query"): unknown {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(fieldErrors(result.error), source);
  return result.data;
}

/** The longest client address and User-Agent kept (for the audit log). */
const MAX_IP = 64;
const MAX_USER_AGENT = 256;

function handlerFor(route: Route) {
  return async (request: IRequest, env: Env, exec: ExecutionContext): Promise<Response> => {
    const ip = request.headers.get("cf-connecting-ip")?.slice(0, MAX_IP) ?? null;
    const app = createContext(env, exec, () => ({
      ip,
      userAgent: request.headers.get("user-agent")?.slice(0, MAX_USER_AGENT) ?? null,
    }));
    let actor: Actor | null = null;
    if (route.auth === "required") {
      try {
        actor = await authenticate(request.headers.get("authorization"), app.config, app.keys, ip ?? undefined);
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
function withStandardHeaders(response: Response): Response {
  try {
    setStandardHeaders(response.headers);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    setStandardHeaders(copy.headers);
    return copy;
  }
}

export function createApp(routes: readonly Route[]) {
  const router = Router<IRequest, Args>({
    catch: (error: unknown) => errorToProblem(error),
    finally: [
      (response: unknown) =>
        withStandardHeaders(response instanceof Response ? response : errorToProblem(new Error("no response"))),
    ],
  });
  for (const route of routes) router[route.method](route.path, handlerFor(route));

  const patterns = router.routes.map(([method, pattern]) => ({ method, pattern }));
  router.all("*", (request: IRequest) => {
    const { pathname } = new URL(request.url);
    const allowed = new Set(
      patterns.filter((p) => p.method !== "ALL" && p.pattern.test(pathname)).map((p) => p.method),
    );
    if (allowed.size === 0) throw new HttpError(404, { detail: `No route for ${pathname}` });
    return problem(405, {
      detail: `Use ${[...allowed].join(", ")} for this path`,
      headers: { Allow: [...allowed].join(", ") },
    });
  });
  return router;
}
