/**
 * CORS, so a dashboard on another origin (the <latchkey-keys> component) can call the management API
 * from the browser. Only exact origins listed in ALLOWED_ORIGINS get `Access-Control-Allow-Origin`
 * (their own origin, never `*`); the API authenticates with a bearer token, never a cookie, so no
 * credentials mode is offered. `/v1/verify` has its own list (VERIFY_ALLOWED_ORIGINS, empty by default):
 * a browser that can verify a key holds the key, which is what keys exist to avoid.
 *
 * Every `/v1/*` response says `Vary: Origin`, as its headers depend on it. A preflight (`OPTIONS` with
 * `Origin` and `Access-Control-Request-Method`) from a listed origin gets 204 with the path's methods;
 * from any other origin a 403 problem, so the refusal is visible in the browser's network panel. An
 * `OPTIONS` that is not a preflight is routed as before (405 with `Allow`).
 */
import type { Config } from "../config";
import { problem } from "./problem";

/** The request headers a browser client may send (the component sends the first two). */
export const ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id";
/** The response headers a browser client may read besides the CORS-safelisted ones. */
export const EXPOSED_HEADERS =
  "Location, Retry-After, WWW-Authenticate, X-Request-Id, RateLimit, RateLimit-Policy, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset";
/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours). */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

const API_PREFIX = "/v1/";
const VERIFY_PATH = "/v1/verify";

/** The origins that may call `pathname` from a browser, or null when the path is not an API path. */
function originsFor(pathname: string, config: Config): ReadonlySet<string> | null {
  if (pathname === VERIFY_PATH) return config.cors.verifyOrigins;
  return pathname.startsWith(API_PREFIX) ? config.cors.origins : null;
}

/** Adds `values` to the response's Vary header, keeping what is there and not repeating a name. */
function addVary(headers: Headers, ...values: string[]): void {
  const present = (headers.get("Vary") ?? "").split(",").map((v) => v.trim().toLowerCase());
  for (const value of values) if (!present.includes(value.toLowerCase())) headers.append("Vary", value);
}

/**
 * Answers a CORS preflight for an API path, or returns null for any other request (routed as usual).
 * `methods` are the methods the path serves; an empty list means no route, left to the 404.
 */
export function preflight(
  request: Request,
  pathname: string,
  methods: readonly string[],
  config: Config,
): Response | null {
  const origins = originsFor(pathname, config);
  const origin = request.headers.get("Origin");
  if (!origins || !origin || !request.headers.has("Access-Control-Request-Method") || methods.length === 0) return null;
  if (!origins.has(origin)) {
    const setting = pathname === VERIFY_PATH ? "VERIFY_ALLOWED_ORIGINS" : "ALLOWED_ORIGINS";
    return problem(403, { detail: `This origin may not call this path from a browser (see ${setting})` });
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
export function setCorsHeaders(headers: Headers, request: Request, pathname: string, config: Config): void {
  const origins = originsFor(pathname, config);
  if (!origins) return;
  addVary(headers, "Origin");
  const origin = request.headers.get("Origin");
  if (origin === null || !origins.has(origin)) return;
  headers.set("Access-Control-Allow-Origin", origin);
  headers.set("Access-Control-Expose-Headers", EXPOSED_HEADERS);
}
