/** Shared test helpers: sign JWTs like an identity provider, and call the Worker like a client. */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { expect, vi } from "vitest";
import worker from "../src/index";
import type { Env } from "../src/env";
import { sha256Hex } from "../src/keys/hash";
import { type ProblemCode, problemType } from "../src/problems";
import { checkContract } from "./contract";
// Not imported from vitest.config.ts: that module loads the plugin (Node only), which workerd cannot run.
const TEST_JWT_SECRET = env.JWT_SECRET ?? "";

export const BASE = "https://latchkey.test";

export interface TokenOptions {
  org?: string;
  ttl?: number;
  issuer?: string;
  audience?: string;
  secret?: string;
  claims?: Record<string, unknown>;
  omitExp?: boolean;
  /** The roles claim. Default: `["admin"]` when `org` is given (an admin of that workspace), else none. */
  roles?: string[];
}

export async function token(sub: string | undefined, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const roles = options.roles ?? (options.org ? ["admin"] : undefined);
  let jwt = new SignJWT({
    ...(options.org ? { org_id: options.org } : {}),
    ...(roles ? { [env.JWT_ROLES_CLAIM ?? "roles"]: roles } : {}),
    ...options.claims,
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setIssuer(options.issuer ?? env.JWT_ISSUER ?? "")
    .setAudience(options.audience ?? env.JWT_AUDIENCE ?? "");
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  if (!options.omitExp) jwt = jwt.setExpirationTime(now + (options.ttl ?? 600));
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}

export interface CallOptions {
  /** A JWT or key, sent as `Authorization: Bearer <auth>`. */
  auth?: string;
  body?: unknown;
  /** A raw body, sent as is. */
  raw?: BodyInit;
  headers?: Record<string, string>;
  /** Bindings to use instead of the test env (e.g. with failing or counting stores). */
  env?: Env;
}

/**
 * Calls the Worker's fetch handler and waits for its waitUntil work, so effects are observable. Every
 * response is checked against the served OpenAPI document (contract.ts): a mismatch fails the test.
 */
export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.auth && !headers.has("authorization")) headers.set("authorization", `Bearer ${options.auth}`);
  let body: BodyInit | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  const ctx = createExecutionContext();
  const request = new Request<unknown, IncomingRequestCfProperties>(BASE + path, { method, headers, body });
  const served = options.env ?? env;
  const response = await worker.fetch(request, served, ctx);
  await waitOnExecutionContext(ctx);
  await checkContract(request, response, served);
  return response;
}

export interface CreatedKey {
  id: string;
  key: string;
  [field: string]: unknown;
}

export async function createKey(auth: string, body: Record<string, unknown> = {}, testEnv?: Env): Promise<CreatedKey> {
  const response = await call("POST", "/v1/keys", {
    auth,
    body: { name: "test key", ...body },
    ...(testEnv ? { env: testEnv } : {}),
  });
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${await response.text()}`);
  return response.json();
}

let counter = 0;
/** A subject no other test uses, so tests in one file (which share storage) do not see each other's keys. */
export function uniqueSub(label = "user"): string {
  counter += 1;
  return `${label}-${counter}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Asserts a 4xx (or the given status) RFC 9457 problem response, with `code` (and its `type` URI)
 * when given, and returns its body. (latchkey's problems are also checked against the document.)
 */
export async function expectProblem(
  response: Response,
  status?: number,
  code?: ProblemCode,
): Promise<Record<string, unknown>> {
  if (status === undefined) {
    expect(response.status, `status ${response.status}`).toBeGreaterThanOrEqual(400);
    expect(response.status, `status ${response.status}`).toBeLessThan(500);
  } else {
    expect(response.status).toBe(status);
  }
  expect(response.headers.get("content-type")).toBe("application/problem+json");
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toMatchObject({
    type: expect.any(String),
    status: response.status,
    title: expect.any(String),
    detail: expect.any(String),
  });
  if (code !== undefined) expect(body).toMatchObject({ code, type: problemType(code) });
  return body;
}

export interface TableSnapshot {
  rows: number;
  checksum: string;
}

/** Row count and SHA-256 of every row of api_keys (except `exceptIds`): equal snapshots mean nothing stored changed. */
export async function tableSnapshot(exceptIds: readonly string[] = []): Promise<TableSnapshot> {
  const { results } = await env.DB.prepare("SELECT * FROM api_keys ORDER BY id").all<{ id: string }>();
  const rows = results.filter((row) => !exceptIds.includes(row.id));
  return { rows: rows.length, checksum: await sha256Hex(JSON.stringify(rows)) };
}

/** How a faulty binding fails: a synchronous throw, a rejected promise, or a promise that never settles. */
export type Fault = "throw" | "reject" | "hang";

function fail(fault: Fault, what: string): Promise<never> {
  if (fault === "throw") throw new Error(`injected fault: ${what}`);
  return fault === "reject" ? Promise.reject(new Error(`injected fault: ${what}`)) : new Promise<never>(() => {});
}

/**
 * D1 whose statements fail when executed (those whose SQL matches `when`; default all). A batch fails
 * as a whole when `when` matches any of its statements (asked of each, in order), as D1 rolls it back.
 * Its sessions (`withSession`) fail alike.
 */
export function faultyDb(fault: Fault, when: (sql: string) => boolean = () => true): D1Database {
  const unwrapped = new WeakMap<object, { sql: string; real: D1PreparedStatement }>();
  const statement = (sql: string, real: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(real, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => statement(sql, target.bind(...values));
        const value: unknown = Reflect.get(target, prop);
        if (typeof value !== "function") return value;
        if (when(sql)) return () => fail(fault, `D1 ${String(prop)}`);
        return (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args);
      },
    });
    unwrapped.set(proxy, { sql, real });
    return proxy;
  };
  const faulty = <T extends D1Database | D1DatabaseSession>(db: T): T =>
    new Proxy(db, {
      get(target, prop) {
        if (prop === "withSession") {
          return (from?: string) => faulty((target as D1Database).withSession(from));
        }
        if (prop === "prepare") return (sql: string) => statement(sql, target.prepare(sql));
        if (prop === "batch") {
          return (statements: D1PreparedStatement[]) => {
            const parts = statements.map((s) => unwrapped.get(s));
            if (parts.some((part) => !part || when(part.sql))) return fail(fault, "D1 batch");
            return target.batch(parts.map((part) => part!.real));
          };
        }
        if (prop === "exec") return () => fail(fault, `D1 ${prop}`);
        const value: unknown = Reflect.get(target, prop);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  return faulty(env.DB);
}

/** Workers KV whose every call fails. */
export function faultyKv(fault: Fault): KVNamespace {
  return new Proxy(env.KEY_CACHE, { get: (_, prop) => () => fail(fault, `KV ${String(prop)}`) });
}

/**
 * A Proxy of the D1 binding `db` with `handler`, and of every session it makes (`withSession`) with the
 * same handler: a management request queries through sessions (src/store/d1-session.ts), so a stand-in
 * that rewrites, counts or fails statements must see theirs too.
 */
export function d1Proxy(
  db: D1Database,
  handler: { get: (target: D1Database, prop: string | symbol) => unknown },
): D1Database {
  const wrap = (target: D1Database): D1Database =>
    new Proxy(target, {
      get(t, prop) {
        if (prop === "withSession") return (from?: string) => wrap(t.withSession(from) as unknown as D1Database);
        return handler.get(t, prop);
      },
    });
  return wrap(db);
}

/** A fresh env (so configuration is re-read) with some bindings replaced, e.g. by faultyDb / faultyKv. */
export function envWith(bindings: Partial<Env>): Env {
  return { ...env, ...bindings };
}

/** A body streamed in chunks with no Content-Length, as a client may send it. */
export function streamOf(content: string | Uint8Array, chunkSize = 1024): ReadableStream<Uint8Array> {
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

/** One captured log line, parsed (src/log.ts writes JSON objects). */
export interface LogLine {
  level: string;
  event: string;
  request_id?: string;
  [field: string]: unknown;
}

export interface CapturedLogs {
  /** Every line written, raw, as the console got it. */
  readonly raw: string[];
  /** The lines parsed as JSON (throws if one is not JSON). */
  lines(): LogLine[];
  /** The parsed lines whose event is `event`. */
  events(event: string): LogLine[];
  restore(): void;
}

/**
 * Captures console output (log, info, warn, error, debug) instead of printing it, so a test can assert
 * the log lines it expects and the run stays quiet. Restored by `restore()` (or vi.restoreAllMocks).
 */
export function captureLogs(): CapturedLogs {
  const raw: string[] = [];
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((method) =>
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      raw.push(args.map(String).join(" "));
    }),
  );
  const lines = () => raw.map((line) => JSON.parse(line) as LogLine);
  return {
    raw,
    lines,
    events: (event) => lines().filter((line) => line.event === event),
    restore: () => {
      for (const spy of spies) spy.mockRestore();
    },
  };
}

/** Runs `work` with every console method captured (and silenced); returns the raw lines logged. */
export async function logsOf(work: () => Promise<void>): Promise<string[]> {
  const logs = captureLogs();
  try {
    await work();
  } finally {
    logs.restore();
  }
  return logs.raw;
}

/** A copy of the test env (so its configuration is read afresh) whose DB and KV record every use. */
export function recordingEnv(): { testEnv: Env; uses: string[] } {
  const uses: string[] = [];
  const recording = <T extends object>(name: string, target: T): T =>
    new Proxy(target, {
      get(t, property) {
        uses.push(`${name}.${String(property)}`);
        const value: unknown = Reflect.get(t, property, t);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  const testEnv = envWith({ DB: recording("DB", env.DB), KEY_CACHE: recording("KEY_CACHE", env.KEY_CACHE) });
  return { testEnv, uses };
}
