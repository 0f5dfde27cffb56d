/**
 * Brute-force damping: failed authentications are counted per client with the Workers rate limiting
 * binding, and a client over the limit gets 429 instead of 401. Only failures are counted, so
 * successful traffic never waits for the limiter.
 */
import type { Env } from "../env";
import { problem } from "./problem";
import { describeError } from "../log";

export const RETRY_AFTER_SECONDS = 60;

export function clientId(request: Request): string {
  return request.headers.get("cf-connecting-ip") ?? "unknown";
}

/** Counts one failed authentication; a 429 problem when the client is over its limit, else null. */
export async function countAuthFailure(request: Request, env: Env): Promise<Response | null> {
  const limiter = env.AUTH_FAILURE_LIMITER;
  if (!limiter) return null;
  try {
    const { success } = await limiter.limit({ key: clientId(request) });
    if (success) return null;
  } catch (error) {
    console.warn(`latchkey: rate limiter failed: ${describeError(error)}`);
    return null;
  }
  return problem(429, {
    detail: "Too many failed authentications; wait before trying again",
    headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
  });
}
