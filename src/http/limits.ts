/**
 * Brute-force damping, per client, with the Workers rate limiting binding:
 * - failed authentications (AUTH_FAILURE_LIMITER): a client over the limit gets 429 instead of 401;
 * - NOT_FOUND answers of an open POST /v1/verify (VERIFY_MISS_LIMITER): each costs a KV and a D1
 *   read, and the key checksum is public, so unknown well-formed keys are free to mint.
 * Only failures are counted, so successful traffic never waits for a limiter. A client found over a
 * limit is remembered by the isolate for a few seconds, and while it is, its requests are judged from
 * the isolate's memory alone (src/service/verify.ts `fromMemory`): what memory cannot settle is
 * answered 429 before any storage lookup and without asking the binding again, so a flood costs
 * neither D1 nor the limiter. A warm key or a valid JWT from that client still works. When those
 * seconds are up, one request at a time re-checks the client (its own lookup, then the binding: over
 * again, or not any more), at most one a second, while its other requests are still judged from memory:
 * a flood that goes on reaches storage once per re-check, not once per request in flight.
 *
 * A client is its IPv4 address, or its IPv6 /64 (one subscriber holds a whole /64, so a per-address
 * count is no limit at all). Requests without CF-Connecting-IP (from other Workers, or a proxy
 * stripping it) cannot be told apart: they share one bucket of their own, counted by the stricter
 * AUTH_FAILURE_LIMITER_NO_IP when it is bound.
 */
import type { Env } from "../env";
import { describeError, log } from "../log";
import type { VerifyChecks } from "../schemas";
import type { Keys } from "../service/keys";
import { TtlLru } from "../util/lru";
import { HttpError, problem } from "./problem";
import { json } from "./route";

export const RETRY_AFTER_SECONDS = 60;
/** How long this isolate answers 429 to a client the binding found over its limit, without asking again. */
const LIMITED_MEMORY_MS = 10_000;
/** After that, how often one request of the client may re-check it (the others are judged from memory meanwhile). */
const RECHECK_MS = 1_000;
/** How long a client the binding found over is remembered for re-checks: its window (60 s), then it is new again. */
const RECHECK_MEMORY_MS = 60_000;
/** The one client that requests without CF-Connecting-IP make. Cannot collide: addresses get a prefix. */
export const NO_IP_CLIENT = "no-ip";

const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/;
const HEXTET = /^[0-9a-f]{1,4}$/;

/** The eight 16-bit groups of an IPv6 address in any RFC 4291 spelling, or null if it is not one. */
function ipv6Groups(address: string): number[] | null {
  let text = address.toLowerCase().split("%")[0]!; // without a zone id (fe80::1%eth0)
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (IPV4.test(last)) {
    // An embedded IPv4 address (::ffff:192.0.2.1) spells the last two groups.
    const [a, b, c, d] = last.split(".").map(Number) as [number, number, number, number];
    if (Math.max(a, b, c, d) > 255) return null;
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves[1] ? halves[1].split(":") : [];
  if (halves.length === 2 && head.length + tail.length > 7) return null;
  const groups =
    halves.length === 1 ? head : [...head, ...Array<string>(8 - head.length - tail.length).fill("0"), ...tail];
  if (groups.length !== 8 || !groups.every((group) => HEXTET.test(group))) return null;
  return groups.map((group) => parseInt(group, 16));
}

/**
 * Who a request comes from, as the limiters count it: `ip4:<address>`, `ip6:<the /64>::/64` (an
 * IPv4-mapped IPv6 address counts as its IPv4 address), NO_IP_CLIENT without CF-Connecting-IP, and
 * the header itself for anything else (only local development sends such values).
 */
export function clientOf(request: Request): string {
  const ip = request.headers.get("cf-connecting-ip")?.trim();
  if (!ip) return NO_IP_CLIENT;
  if (IPV4.test(ip)) return `ip4:${ip}`;
  const groups = ip.includes(":") ? ipv6Groups(ip) : null;
  if (!groups) return `other:${ip.slice(0, 64)}`;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = groups as [number, number, number, number, number, number, number, number];
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) {
    return `ip4:${g6 >> 8}.${g6 & 255}.${g7 >> 8}.${g7 & 255}`;
  }
  return `ip6:${[g0, g1, g2, g3].map((group) => group.toString(16)).join(":")}::/64`;
}

/** A client the binding found over its limit: judged from memory until `judgedUntil`, then re-checked. */
interface OverLimit {
  readonly judgedUntil: number;
  /** Until when the re-check started last is the only one (0: none started). */
  recheckUntil: number;
}

/** One kind of counted failure: the binding that counts it, and this isolate's memory of who is over. */
export class FailureLimit {
  private readonly over = new TtlLru<string, OverLimit>(10_000, RECHECK_MEMORY_MS);

  constructor(private readonly what: string) {}

  /**
   * Is `client` to be judged from memory alone (no binding, no storage)? Yes while it is known here to
   * be over the limit; after that, no for one request (the re-check) and yes for the others until the
   * re-check has counted a failure (over again, or not) or RECHECK_MS have passed.
   */
  isOver(client: string, now = Date.now()): boolean {
    const state = this.over.get(client, now);
    if (!state) return false;
    if (now < state.judgedUntil || now < state.recheckUntil) return true;
    state.recheckUntil = now + RECHECK_MS;
    return false;
  }

  /** Counts one failure of `client`; true when it is now over the limit. A failing binding counts nothing. */
  async count(limiter: RateLimit, client: string, now = Date.now()): Promise<boolean> {
    try {
      const { success } = await limiter.limit({ key: client });
      if (success) {
        this.over.delete(client); // under the limit again (a new window): no longer re-checked
        return false;
      }
    } catch (error) {
      log("warn", "rate_limiter_failed", { limiter: this.what, error: describeError(error) });
      return false;
    }
    this.over.set(client, { judgedUntil: now + LIMITED_MEMORY_MS, recheckUntil: 0 }, now);
    return true;
  }
}

const authFailures = new FailureLimit("failed authentications");
const verifyMisses = new FailureLimit("verify misses");

/** Is `client` over its failed-authentication limit, as far as this isolate knows? */
export function overAuthFailureLimit(client: string): boolean {
  return authFailures.isOver(client);
}

export function tooManyFailures(): HttpError {
  return new HttpError("rate_limited", {
    detail: "Too many failed authentications; wait before trying again",
    headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
  });
}

/** Counts one failed authentication; the 429 to answer when the client is now over its limit, else null. */
export async function countAuthFailure(client: string, env: Env): Promise<HttpError | null> {
  const limiter =
    client === NO_IP_CLIENT ? (env.AUTH_FAILURE_LIMITER_NO_IP ?? env.AUTH_FAILURE_LIMITER) : env.AUTH_FAILURE_LIMITER;
  if (!limiter) return null;
  return (await authFailures.count(limiter, client)) ? tooManyFailures() : null;
}

function tooManyMisses(): Response {
  return problem("verify_rate_limited", {
    detail: "Too many verifications of unknown keys; wait before trying again",
    headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
  });
}

/**
 * POST /v1/verify without a service credential: NOT_FOUND answers count against the client's
 * VERIFY_MISS_LIMITER. Over it, what the isolate's memory can settle is still answered (a known key's
 * verdict); anything else, and every further NOT_FOUND, is a 429 that touched no storage.
 */
export async function meteredVerify(request: Request, env: Env, keys: Keys, key: string, checks: VerifyChecks) {
  const limiter = env.VERIFY_MISS_LIMITER;
  if (!limiter) return json(await keys.verify(key, checks));
  const client = clientOf(request);
  if (verifyMisses.isOver(client)) {
    const verdict = await keys.verifyFromMemory(key, checks);
    return verdict && verdict.code !== "NOT_FOUND" ? json(verdict) : tooManyMisses();
  }
  const verdict = await keys.verify(key, checks);
  if (verdict.code === "NOT_FOUND" && (await verifyMisses.count(limiter, client))) return tooManyMisses();
  return json(verdict);
}
