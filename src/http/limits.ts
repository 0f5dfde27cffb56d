/**
 * Brute-force damping: failed authentications are counted per client with the Workers rate limiting
 * binding, and a client over the limit gets 429 instead of 401. Only failures are counted, so
 * successful traffic never waits for the limiter. A client found over the limit is remembered by the
 * isolate for a few seconds, so a flood of failures is answered without asking the binding each time.
 */
import type { Env } from "../env";
import { describeError, log } from "../log";
import { TtlLru } from "../store/memory";
import { problem } from "./problem";

export const RETRY_AFTER_SECONDS = 60;
/** How long this isolate answers 429 to a client the binding found over its limit, without asking again. */
const LIMITED_MEMORY_MS = 10_000;

const limitedClients = new TtlLru<string, true>(10_000, LIMITED_MEMORY_MS);

function clientId(request: Request): string {
  return request.headers.get("cf-connecting-ip") ?? "unknown";
}

function tooManyFailures(): Response {
  return problem("rate_limited", {
    detail: "Too many failed authentications; wait before trying again",
    headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
  });
}

/** Counts one failed authentication; a 429 problem when the client is over its limit, else null. */
export async function countAuthFailure(request: Request, env: Env): Promise<Response | null> {
  const limiter = env.AUTH_FAILURE_LIMITER;
  if (!limiter) return null;
  const client = clientId(request);
  const now = Date.now();
  if (limitedClients.get(client, now)) return tooManyFailures();
  try {
    const { success } = await limiter.limit({ key: client });
    if (success) return null;
  } catch (error) {
    log("warn", "rate_limiter_failed", { error: describeError(error) });
    return null;
  }
  limitedClients.set(client, true, now);
  return tooManyFailures();
}
