/**
 * `requireKey`: one line to guard a route with latchkey, in a Worker (itty-router, Hono, a plain
 * fetch handler) or a Node server (http, express-style). It reads the key from the request, asks a
 * verifier — a service binding to latchkey's `KeyVerifier` (no network hop) or a `LatchkeyClient`
 * (HTTPS, optionally with its verdict cache) — and either lets the request through with the verdict
 * attached (`verdictOf(request)`, or `request.verdict`) or answers it with an RFC 9457 problem:
 *
 * - 401 (with `WWW-Authenticate`) when no key was sent, or it is malformed, unknown, revoked, disabled
 *   or expired, or its IP allow-list does not hold the client's address;
 * - 403 when the key is good but lacks the scope or the resource;
 * - 429 when the key is over one of its rate limits (RATE_LIMITED) or its credits do not cover the
 *   request's cost (USAGE_EXCEEDED), with `Retry-After` when waiting helps and `RateLimit-Limit`,
 *   `-Remaining` and `-Reset` of its tightest rate limit, and its `credits` and `ratelimits` in the
 *   problem, as latchkey's own routes answer (see `usageHeaders`);
 * - 400 when the resource id or the cost the request names is one latchkey does not accept;
 * - 503 (with `Retry-After`) when latchkey cannot give a verdict right now, or is limiting this
 *   server's verifications (a 429 to the guard: the key's holder did nothing wrong).
 *
 * The problem's `code` is the one latchkey's own routes answer for the verdict (`key_revoked` for
 * REVOKED: VERDICT_PROBLEMS, codes.ts), with its `type` URI and title, and the verdict itself is in
 * `verdict`, so the key's holder learns why. Only a VALID
 * verdict is ever attached, so what a handler reads is a `VerifyVerdict`: the key's id, owner, scopes,
 * resources and expiry are always there (a refused key's verdict, which may carry none of them, never
 * reaches a handler).
 */
import { NO_KEY_PROBLEM, type ProblemKind, VERDICT_PROBLEMS, problemType } from "./codes.js";
import { LatchkeyError } from "./errors.js";
import { parseRpcError } from "./rpc-errors.js";

export { NO_KEY_PROBLEM, VERDICT_PROBLEMS } from "./codes.js";
import type { Problem, RateLimitState, VerifyCode, VerifyOptions, VerifyResult, VerifyVerdict } from "./types.js";

/** Anything that gives latchkey's verdicts: `env.KEYS` (a KeyVerifier binding) or a LatchkeyClient. */
export interface Verifier {
  verify(key: string, options?: VerifyOptions): Promise<VerifyResult>;
}

/** The request as the guard's options see it, the same in every framework. */
export interface GuardRequest {
  readonly method: string;
  /** The request's path, without the query string (`/models/m1/invoke`): the same in every framework. */
  readonly path: string;
  /**
   * The full URL (`https://api.example.com/models/m1/invoke?v=2`). In Node, where `req.url` is only the
   * path and query, it is built from the `Host` header (a client may set it: do not trust its host).
   */
  readonly url: string;
  /** The path parameters the router found (itty-router, Hono, express), or none. */
  readonly params: Readonly<Record<string, string | undefined>>;
  header(name: string): string | null;
}

export interface GuardOptions<E = unknown> {
  /** The scope the key must hold, e.g. `models:invoke`. */
  scope?: string;
  /** The resource id the key must be allowed: fixed, or from the request (e.g. `(r) => r.params.id`). */
  resource?: string | ((request: GuardRequest) => string | undefined);
  /**
   * Credits the request spends from a key with credits (default 1; 0 spends none and takes no
   * rate-limit token): fixed, or from the request (e.g. by the size of the work it asks for).
   */
  cost?: number | ((request: GuardRequest) => number | undefined);
  /** A verifier to use for every request, e.g. `createClient({ baseUrl })`. */
  verifier?: Verifier;
  /** Or the verifier found in each request's env, e.g. `(env) => env.KEYS` for a service binding. */
  binding?: (env: E) => Verifier;
  /** The realm named by `WWW-Authenticate` on a 401 (default "api"). */
  realm?: string;
  /**
   * The client's address, checked against a key's IP allow-list. Default: `CF-Connecting-IP` for
   * fetch-style and Hono requests (Cloudflare sets it); none for Node, whose headers a client could
   * forge (a key with an allow-list then fails): pass your proxy's trusted address there.
   */
  ip?: (request: GuardRequest) => string | undefined;
}

/** A fetch-style guard (itty-router middleware, or a call at the top of a fetch handler) with adapters. */
export interface KeyGuard<E = unknown> {
  /** Resolves to a refusal Response, or to undefined with the verdict attached to `request`. */
  <R extends Request>(request: R, env?: E, ...rest: unknown[]): Promise<Response | undefined>;
  /** Hono middleware: `app.post("/x", guard.hono, handler)`; the verdict is `c.get("verdict")`. */
  hono(c: HonoContextLike<E>, next: () => Promise<void>): Promise<Response | void>;
  /**
   * Node (http) and express-style middleware: on refusal it writes the problem and resolves to null;
   * otherwise it sets `req.verdict`, calls `next()` when given, and resolves to the verdict.
   */
  node(req: NodeRequestLike, res: NodeResponseLike, next?: (error?: unknown) => void): Promise<VerifyVerdict | null>;
}

/** The parts of a Hono Context the guard uses. */
export interface HonoContextLike<E = unknown> {
  req: { raw: Request; param(): Record<string, string> };
  env: E;
  set(key: "verdict", value: VerifyVerdict): void;
}

/** The parts of Node's IncomingMessage (and express's Request) the guard uses. */
export interface NodeRequestLike {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  params?: Record<string, string> | undefined;
  verdict?: VerifyVerdict;
}

/** The parts of Node's ServerResponse the guard uses. */
export interface NodeResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

interface Refusal {
  readonly status: number;
  readonly problem: Problem;
  readonly headers: Record<string, string>;
}

/** The titles of the guard's own problems (no verdict behind them: the request or latchkey failed). */
const TITLES: Record<number, string> = { 400: "Bad Request", 503: "Service Unavailable" };

/** What each refusing verdict tells the key's holder (its status and code: VERDICT_PROBLEMS). */
const DETAILS: Record<Exclude<VerifyCode, "VALID">, string> = {
  MALFORMED: "The API key is malformed",
  NOT_FOUND: "The API key is not valid",
  REVOKED: "The API key has been revoked",
  EXPIRED: "The API key has expired",
  DISABLED: "The API key is disabled",
  IP_NOT_ALLOWED: "The API key may not be used from this address",
  INSUFFICIENT_SCOPE: "The API key lacks the scope this route needs",
  RESOURCE_NOT_ALLOWED: "The API key may not use this resource",
  RATE_LIMITED: "The API key is over its rate limit",
  USAGE_EXCEEDED: "The API key's credits do not cover this request",
};

/** What a 403 exceeded, as latchkey's own 403s name it. */
const EXCEEDED: Partial<Record<VerifyCode, string>> = {
  INSUFFICIENT_SCOPE: "scopes",
  RESOURCE_NOT_ALLOWED: "resources",
};

const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
const verdicts = new WeakMap<object, VerifyVerdict>();

/** The VALID verdict the guard attached to a request (a Request, a Hono Context or a Node request). */
export function verdictOf(request: object): VerifyVerdict | undefined {
  return verdicts.get(request);
}

/** The key from `Authorization: Bearer <key>`, `Authorization: Api-Key <key>` or an `Api-Key` header. */
export function presentedKey(header: (name: string) => string | null): string | null {
  const authorization = header("authorization");
  if (authorization !== null) return /^(?:Bearer|Api-Key) +(\S+) *$/i.exec(authorization)?.[1] ?? null;
  return header("api-key")?.trim() || null;
}

/** A guard that lets in only requests whose key holds `scope` (and `resource`). */
export function requireKey<E = unknown>(options: GuardOptions<E>): KeyGuard<E> {
  if ((options.verifier === undefined) === (options.binding === undefined))
    throw new TypeError("requireKey needs exactly one of `verifier` and `binding`");
  const realm = (options.realm ?? "api").replace(/["\\]/g, "");

  const decide = async (
    request: GuardRequest,
    env: E | undefined,
    edgeIp: string | undefined,
  ): Promise<VerifyVerdict | Refusal> => {
    const key = presentedKey((name) => request.header(name));
    if (key === null)
      return refusal(
        401,
        "Send an API key as `Authorization: Bearer <key>` or `Api-Key: <key>`",
        realm,
        NO_KEY_PROBLEM,
      );
    const checks: VerifyOptions = {};
    if (options.scope !== undefined) checks.scope = options.scope;
    const resource = typeof options.resource === "function" ? options.resource(request) : options.resource;
    if (resource !== undefined) checks.resource = resource;
    const cost = typeof options.cost === "function" ? options.cost(request) : options.cost;
    if (cost !== undefined) checks.cost = cost;
    const ip = options.ip ? options.ip(request) : edgeIp;
    if (ip !== undefined) checks.ip = ip;
    const verifier = options.verifier ?? options.binding!(env as E);
    let verdict: VerifyResult;
    try {
      verdict = await verifier.verify(key, checks);
    } catch (error) {
      return failedVerification(error);
    }
    // Only a live key's VALID verdict lets the request in: `valid` alone is not trusted.
    if (verdict.valid && verdict.code === "VALID") return verdict;
    const code = (verdict.code in DETAILS ? verdict.code : "NOT_FOUND") as Exclude<VerifyCode, "VALID">;
    const kind = VERDICT_PROBLEMS[code];
    const refused = refusal(kind.status, DETAILS[code], realm, kind);
    refused.problem.verdict = verdict.code;
    if (EXCEEDED[code] !== undefined) refused.problem.exceeded = EXCEEDED[code];
    if (kind.status === 429 && "owner" in verdict) {
      Object.assign(refused.headers, usageHeaders(verdict));
      // As latchkey's own 429 does: the key's credits and rate limits after the refused request.
      if (verdict.credits !== undefined) refused.problem.credits = verdict.credits;
      if (verdict.ratelimits !== undefined) refused.problem.ratelimits = verdict.ratelimits;
      if (verdict.limited_by !== undefined) refused.problem.limited_by = verdict.limited_by;
      if (verdict.owner_limits !== undefined) refused.problem.owner_limits = verdict.owner_limits;
    }
    return refused;
  };

  const guard = (async (request: Request, env?: E) => {
    const outcome = await decide(fetchRequest(request), env, edgeAddress(request));
    if (isRefusal(outcome)) return refusalResponse(outcome);
    attach(request, outcome);
    return undefined;
  }) as KeyGuard<E>;

  guard.hono = async (c, next) => {
    const raw = c.req.raw;
    const request = guardRequest(raw.method, raw.url, c.req.param(), (name) => raw.headers.get(name));
    const outcome = await decide(request, c.env, edgeAddress(raw));
    if (isRefusal(outcome)) return refusalResponse(outcome);
    verdicts.set(c, outcome);
    c.set("verdict", outcome);
    await next();
  };

  guard.node = async (req, res, next) => {
    let outcome: VerifyVerdict | Refusal;
    try {
      outcome = await decide(nodeRequest(req), undefined, undefined);
    } catch (error) {
      if (next === undefined) throw error;
      next(error);
      return null;
    }
    if (isRefusal(outcome)) {
      res.statusCode = outcome.status;
      res.setHeader("Content-Type", "application/problem+json");
      for (const [name, value] of Object.entries(outcome.headers)) res.setHeader(name, value);
      res.end(JSON.stringify(outcome.problem));
      return null;
    }
    attach(req, outcome);
    next?.();
    return outcome;
  };

  return guard;
}

/**
 * The usage headers of a key's verdict, for the guard's 429 and for a handler that wants to show a
 * client its limits on success too: `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) of the
 * tightest rate limit (the fewest requests left), as latchkey's own routes send them, and, when the
 * key is RATE_LIMITED, `Retry-After`: the seconds until every exhausted limit has a request again.
 *
 * A verdict names each limit's size and when it is full again, not its refill rate, so the wait is
 * bounded from above: a token bucket refills `limit` requests by `reset`, so the next one comes within
 * (reset - now) / limit. A USAGE_EXCEEDED verdict gets no Retry-After: it does not say whether or
 * when credits come back (a refill, a top-up, or never), and a client told to retry would only spin.
 */
export function usageHeaders(verdict: VerifyVerdict, now = Date.now()): Record<string, string> {
  const headers: Record<string, string> = {};
  // The limits of whoever refused: the owner's per-customer limits when `limited_by` says so.
  const limits = (verdict.limited_by === "owner" ? verdict.owner_limits?.ratelimits : verdict.ratelimits) ?? [];
  const untilMs = (limit: RateLimitState) => Math.max(0, limit.reset - now);
  if (verdict.code === "RATE_LIMITED") {
    const waits = limits.filter((limit) => limit.remaining < 1).map((limit) => untilMs(limit) / limit.limit);
    if (waits.length > 0) headers["Retry-After"] = String(Math.max(1, Math.ceil(Math.max(...waits) / 1000)));
  }
  const tightest = limits.reduce<RateLimitState | null>(
    (min, limit) => (min === null || limit.remaining < min.remaining ? limit : min),
    null,
  );
  if (tightest !== null) {
    headers["RateLimit-Limit"] = String(tightest.limit);
    headers["RateLimit-Remaining"] = String(tightest.remaining);
    headers["RateLimit-Reset"] = String(Math.ceil(untilMs(tightest) / 1000));
  }
  return headers;
}

/** A refusal: latchkey's problem `kind` when there is one, else a plain one (`about:blank`, the status's title). */
function refusal(
  status: number,
  detail: string,
  realm: string,
  kind?: ProblemKind,
  retryAfter = UNAVAILABLE_RETRY_AFTER_SECONDS,
): Refusal {
  const problem: Problem =
    kind === undefined
      ? { type: "about:blank", title: TITLES[status] ?? "Error", status, detail }
      : { type: problemType(kind.code), title: kind.title, status, detail, code: kind.code };
  const headers: Record<string, string> = {};
  if (status === 401) headers["WWW-Authenticate"] = `Bearer realm="${realm}", Api-Key realm="${realm}"`;
  if (status === 503) headers["Retry-After"] = String(retryAfter);
  return { status, problem, headers };
}

/**
 * A verifier that threw: the request's resource id or cost was refused by latchkey (400), latchkey
 * is limiting this server's verifications (429: 503 with latchkey's Retry-After), or latchkey could
 * not answer (503). Anything else is a bug and is rethrown. Service-binding errors carry their code
 * in the message (`[invalid] ...`, `[unavailable] ...`: parseRpcError); the HTTP client throws LatchkeyError.
 */
function failedVerification(error: unknown): Refusal {
  const rpc = error instanceof LatchkeyError ? null : parseRpcError(error)?.code;
  if (error instanceof LatchkeyError ? error.status === 422 || error.status === 400 : rpc === "invalid")
    return refusal(400, "The request names a resource id or a cost latchkey does not accept", "");
  if (error instanceof LatchkeyError && error.status === 429)
    return refusal(
      503,
      "Key verification is limited right now; retry shortly",
      "",
      undefined,
      error.retryAfter ?? UNAVAILABLE_RETRY_AFTER_SECONDS,
    );
  if (error instanceof LatchkeyError ? error.unavailable : rpc === "unavailable")
    return refusal(503, "Key verification is unavailable; retry shortly", "");
  throw error;
}

function isRefusal(outcome: VerifyVerdict | Refusal): outcome is Refusal {
  return "problem" in outcome;
}

function refusalResponse(outcome: Refusal): Response {
  const headers = new Headers({ "Content-Type": "application/problem+json", ...outcome.headers });
  return new Response(JSON.stringify(outcome.problem), { status: outcome.status, headers });
}

function attach(request: object, verdict: VerifyVerdict): void {
  verdicts.set(request, verdict);
  (request as { verdict?: VerifyVerdict }).verdict = verdict;
}

/** A GuardRequest for `url`; its `path` (that of `pathUrl`) is parsed only when an option reads it. */
function guardRequest(
  method: string,
  url: string,
  params: GuardRequest["params"],
  header: GuardRequest["header"],
  pathUrl = url,
): GuardRequest {
  return {
    method,
    url,
    get path() {
      return new URL(pathUrl).pathname;
    },
    params,
    header,
  };
}

function fetchRequest(request: Request): GuardRequest {
  const params = (request as Request & { params?: Record<string, string> }).params ?? {};
  return guardRequest(request.method, request.url, params, (name) => request.headers.get(name));
}

/** The client's address as Cloudflare reports it to a Worker. */
function edgeAddress(request: Request): string | undefined {
  return request.headers.get("cf-connecting-ip") ?? undefined;
}

function nodeRequest(req: NodeRequestLike): GuardRequest {
  const header = (name: string) => {
    const value = req.headers[name.toLowerCase()];
    return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
  };
  const url = `http://${header("host") ?? "localhost"}${req.url ?? "/"}`;
  // The path from `req.url` alone: whatever the Host header holds, it is the path the server routed.
  return guardRequest(req.method ?? "GET", url, req.params ?? {}, header, `http://localhost${req.url ?? "/"}`);
}
