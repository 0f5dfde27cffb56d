/**
 * An example API guarded by latchkey over a service binding, one line per route: `requireKey` asks
 * latchkey's KeyVerifier entrypoint (no HTTP hop, no shared secret, the same verdict as POST
 * /v1/verify) and answers 401 / 403 problems itself, or lets the call in with the verdict attached.
 *
 * It binds KeyVerifier, not KeyService: a Worker that only checks keys must not be able to create or
 * revoke them. latchkey is imported only as types, so nothing of it is bundled.
 */
import { requireKey, verdictOf } from "@latchkey/client/guard";
import type { KeyVerifier } from "@latchkey/client/rpc";
import { type IRequest, Router } from "itty-router";

export interface Env {
  /** latchkey's KeyVerifier entrypoint ([[services]] in wrangler.toml). */
  KEYS: Service<KeyVerifier>;
}

const keys = (env: Env) => env.KEYS;
const realm = "latchkey-consumer";

/** Who called, as latchkey knows them: the key's owner and id. */
function caller(request: IRequest) {
  const verdict = verdictOf(request);
  return { owner: verdict?.owner, key_id: verdict?.key_id };
}

const router = Router<IRequest, [Env, ExecutionContext]>();

router.post(
  "/models/:id/invoke",
  // The id as sent in the path: latchkey refuses (400) anything that is not a valid resource id.
  requireKey<Env>({ scope: "models:invoke", resource: (r) => r.params.id, binding: keys, realm }),
  (request) => {
    const model = request.params.id;
    return Response.json({ model, output: `model ${model} invoked`, ...caller(request) });
  },
);

router.get("/metrics", requireKey<Env>({ scope: "metrics:read", binding: keys, realm }), (request) =>
  Response.json({ requests_today: 42, ...caller(request) }),
);

function notFound(): Response {
  const body = { type: "about:blank", title: "Not Found", status: 404, detail: "No such route" };
  return new Response(JSON.stringify(body), { status: 404, headers: { "Content-Type": "application/problem+json" } });
}

export default {
  async fetch(request, env, ctx) {
    return ((await router.fetch(request, env, ctx)) as Response | undefined) ?? notFound();
  },
} satisfies ExportedHandler<Env>;
