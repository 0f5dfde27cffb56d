/**
 * An example API guarded by latchkey over a service binding. Each route names the scope (and
 * resource) a key needs; latchkey's KeyService gives the same verdict as POST /v1/verify, with no
 * HTTP hop and no shared secret, and this Worker turns it into a 401 / 403 problem or lets the call in.
 *
 * It imports latchkey only as a type, so the binding is typed end to end at no runtime cost:
 * `env.KEYS.verify(...)` returns latchkey's VerifyResult.
 */
import type { KeyService, VerifyKeyOptions, VerifyResultView } from "../../../src/rpc";

export interface Env {
  /** latchkey's KeyService entrypoint ([[services]] in wrangler.toml). */
  KEYS: Service<KeyService>;
}

type Refusal = Exclude<VerifyResultView["code"], "VALID">;

/** How each refusal reaches the key's holder: 401 when the key is no good, 403 when it is not enough. */
const REFUSALS: Record<Refusal, { status: 401 | 403; detail: string }> = {
  MALFORMED: { status: 401, detail: "The API key is malformed" },
  NOT_FOUND: { status: 401, detail: "The API key is not valid" },
  REVOKED: { status: 401, detail: "The API key has been revoked" },
  EXPIRED: { status: 401, detail: "The API key has expired" },
  DISABLED: { status: 401, detail: "The API key is disabled" },
  IP_NOT_ALLOWED: { status: 401, detail: "The API key may not be used from this address" },
  INSUFFICIENT_SCOPE: { status: 403, detail: "The API key lacks the scope this route needs" },
  RESOURCE_NOT_ALLOWED: { status: 403, detail: "The API key may not use this resource" },
};

const WWW_AUTHENTICATE = 'Bearer realm="latchkey-consumer", Api-Key realm="latchkey-consumer"';
const TITLES = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  503: "Service Unavailable",
};

/** An RFC 9457 problem; a 401 says how to authenticate. */
function problem(status: keyof typeof TITLES, detail: string, extra: Record<string, unknown> = {}): Response {
  const headers = new Headers({ "Content-Type": "application/problem+json" });
  if (status === 401) headers.set("WWW-Authenticate", WWW_AUTHENTICATE);
  if (status === 503) headers.set("Retry-After", "5");
  const body = { type: "about:blank", title: TITLES[status], status, detail, ...extra };
  return new Response(JSON.stringify(body), { status, headers });
}

/** The key from `Authorization: Bearer <key>`, `Authorization: Api-Key <key>` or an `Api-Key` header. */
function presentedKey(request: Request): string | null {
  const authorization = request.headers.get("Authorization");
  if (authorization !== null) return /^(?:Bearer|Api-Key) +(\S+) *$/i.exec(authorization)?.[1] ?? null;
  return request.headers.get("Api-Key")?.trim() || null;
}

/** Asks latchkey whether the request's key holds `needs`: the verdict when it does, else the refusal. */
async function guard(request: Request, env: Env, needs: VerifyKeyOptions): Promise<VerifyResultView | Response> {
  const key = presentedKey(request);
  if (key === null) return problem(401, "Send an API key as `Authorization: Bearer <key>` or `Api-Key: <key>`");
  let verdict: VerifyResultView;
  try {
    // The client's address, for keys with an IP allow-list (Cloudflare sets the header).
    const ip = request.headers.get("cf-connecting-ip") ?? undefined;
    verdict = await env.KEYS.verify(key, { ...needs, ip });
  } catch (error) {
    // KeyService errors start with a code: [invalid] (here: a path id that is not a valid resource
    // id) or [unavailable] (latchkey's storage is down).
    const message = error instanceof Error ? error.message : String(error);
    if (message.startsWith("[invalid]")) return problem(400, "The path holds an invalid resource id");
    if (message.startsWith("[unavailable]")) return problem(503, "Key verification is unavailable; retry shortly");
    throw error;
  }
  if (verdict.code === "VALID") return verdict;
  const refusal = REFUSALS[verdict.code];
  return problem(refusal.status, refusal.detail, { code: verdict.code });
}

/** Who called, as latchkey knows them: the key's owner and id. */
const caller = (verdict: VerifyResultView) => ({ owner: verdict.owner, key_id: verdict.key_id });

const INVOKE = new URLPattern({ pathname: "/models/:id/invoke" });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);

    const invoke = INVOKE.exec(url);
    if (invoke && request.method === "POST") {
      // The id as sent in the path: latchkey rejects anything that is not a valid resource id.
      const model = invoke.pathname.groups.id ?? "";
      const verdict = await guard(request, env, { scope: "models:invoke", resource: model });
      if (verdict instanceof Response) return verdict;
      return Response.json({ model, output: `model ${model} invoked`, ...caller(verdict) });
    }

    if (url.pathname === "/metrics" && request.method === "GET") {
      const verdict = await guard(request, env, { scope: "metrics:read" });
      if (verdict instanceof Response) return verdict;
      return Response.json({ requests_today: 42, ...caller(verdict) });
    }

    return problem(404, "No such route");
  },
} satisfies ExportedHandler<Env>;
