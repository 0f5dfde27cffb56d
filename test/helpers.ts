/** Shared test helpers: sign JWTs like an identity provider, and call the Worker like a client. */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import worker from "../src/index";
import type { Env } from "../src/env";
import { TEST_JWT_SECRET } from "../vitest.config";

export const BASE = "https://latchkey.test";

export interface TokenOptions {
  org?: string;
  ttl?: number;
  issuer?: string;
  audience?: string;
  secret?: string;
  claims?: Record<string, unknown>;
  omitExp?: boolean;
}

export async function token(sub: string | undefined, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ ...(options.org ? { org_id: options.org } : {}), ...options.claims })
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

/** Calls the Worker's fetch handler and waits for its waitUntil work, so effects are observable. */
export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.auth && !headers.has("authorization")) headers.set("authorization", `Bearer ${options.auth}`);
  let body: BodyInit | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(BASE + path, { method, headers, body }), options.env ?? env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

export interface CreatedKey {
  id: string;
  key: string;
  [field: string]: unknown;
}

export async function createKey(auth: string, body: Record<string, unknown> = {}, testEnv?: Env): Promise<CreatedKey> {
  const response = await call("POST", "/v1/keys", { auth, body: { name: "test key", ...body }, ...(testEnv ? { env: testEnv } : {}) });
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${await response.text()}`);
  return response.json();
}

let counter = 0;
/** A subject no other test uses, so tests in one file (which share storage) do not see each other's keys. */
export function uniqueSub(label = "user"): string {
  counter += 1;
  return `${label}-${counter}-${crypto.randomUUID().slice(0, 8)}`;
}
