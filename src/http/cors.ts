/**
 * CORS, so a dashboard on another origin (the <latchkey-keys> component) can call the management API
 * from the browser. Only exact origins listed in ALLOWED_ORIGINS get `Access-Control-Allow-Origin`
 * (their own origin, never `*`); the API authenticates with a bearer token, never a cookie, so no
 * credentials mode is offered. `/v1/verify` has its own list (VERIFY_ALLOWED_ORIGINS, empty by default):
 * a browser that can verify a key holds the key, which is what keys exist to avoid.
 *
 * Which list judges a request is a property of the route it reaches, never of the URL's spelling: the
 * router (app.ts) names the list of the matched route (`corsListOf`), and the preflight and the actual
 * response of one path use the same answer (`/v1/verify/` is the verify route, so VERIFY_ALLOWED_ORIGINS).
 *
 * Every `/v1/*` response says `Vary: Origin`, as its headers depend on it. A preflight (`OPTIONS` with
 * `Origin` and `Access-Control-Request-Method`) from a listed origin gets 204 with the path's methods;
 * from any other origin a 403 problem, so the refusal is visible in the browser's network panel. An
 * `OPTIONS` that is not a preflight is routed as before (405 with `Allow`).
 */
import type { Config } from "../config";
import { BOOKMARK_HEADER } from "./bookmark";
import { problem } from "./problem";

/** The request headers a browser client may send (the component sends the first two, and the bookmark). */
export const ALLOWED_HEADERS = `Authorization, Content-Type, Idempotency-Key, X-Request-Id, ${BOOKMARK_HEADER}`;
/** The response headers a browser client may read besides the CORS-safelisted ones. */
export const EXPOSED_HEADERS = `Location, Retry-After, WWW-Authenticate, X-Request-Id, RateLimit, RateLimit-Policy, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, ${BOOKMARK_HEADER}`;
/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours). */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

const API_PREFIX = "/v1/";

/** Which origins may call a route from a browser: ALLOWED_ORIGINS (`api`) or VERIFY_ALLOWED_ORIGINS (`verify`). */
export type CorsList = "api" | "verify";

/**
 * The list of a route (its pattern and auth mode, from the route table), or null for a route outside
 * the API (health, document, UI). The verify route is the one route whose callers are services.
 */
export function corsListOf(route: { readonly path: string; readonly auth: string }): CorsList | null {
  if (route.auth === "verify") return "verify";
  return route.path.startsWith(API_PREFIX) ? "api" : null;
}

/** The list for a path no route serves (a 404 or a 405 still carries CORS headers under /v1/). */
export function corsListOfUnrouted(pathname: string): CorsList | null {
  return pathname.startsWith(API_PREFIX) ? "api" : null;
}

function originsFor(list: CorsList | null, config: Config): ReadonlySet<string> | null {
  if (list === null) return null;
  return list === "verify" ? config.cors.verifyOrigins : config.cors.origins;
}

/** Adds `values` to the response's Vary header, keeping what is there and not repeating a name. */
function addVary(headers: Headers, ...values: string[]): void {
  const present = (headers.get("Vary") ?? "").split(",").map((v) => v.trim().toLowerCase());
  for (const value of values) if (!present.includes(value.toLowerCase())) headers.append("Vary", value);
}

/**
 * Answers a CORS preflight for an API path, or returns null for any other request (routed as usual).
 * `list`: the matched routes' list; `methods` are the methods the path serves (an empty list means
 * no route, left to the 404).
 */
export function preflight(
  request: Request,
  list: CorsList | null,
  methods: readonly string[],
  config: Config,
): Response | null {
  const origins = originsFor(list, config);
  const origin = request.headers.get("Origin");
  if (!origins || !origin || !request.headers.has("Access-Control-Request-Method") || methods.length === 0) return null;
  if (!origins.has(origin)) {
    const setting = list === "verify" ? "VERIFY_ALLOWED_ORIGINS" : "ALLOWED_ORIGINS";
    return problem("origin_not_allowed", {
      detail: `This origin may not call this path from a browser (see ${setting})`,
    });
  }
  const response = new Response(null, {
    status: 204,
    headers: {
      "Access-Control-Allow-Methods": methods.join(", "),
      "Access-Control-Allow-Headers": ALLOWED_HEADERS,
      "Access-Control-Max-Age": String(PREFLIGHT_MAX_AGE_SECONDS),
    },
  });
  addVary(response.headers, "Access-Control-Request-Method", "Access-Control-Request-Headers");
  return response;
}

/** Sets the CORS headers of any response to an API path (errors included: the page must read them). */
export function setCorsHeaders(headers: Headers, request: Request, list: CorsList | null, config: Config): void {
  const origins = originsFor(list, config);
  if (!origins) return;
  addVary(headers, "Origin");
  const origin = request.headers.get("Origin");
  if (origin === null || !origins.has(origin)) return;
  headers.set("Access-Control-Allow-Origin", origin);
  headers.set("Access-Control-Expose-Headers", EXPOSED_HEADERS);
}
