/**
 * The verify cache: verdicts remembered in memory for a few seconds, so a backend that checks the
 * same key on every request pays latchkey's round trip once per TTL instead of once per request.
 *
 * What it trades: a key revoked at latchkey keeps passing here for up to the TTL more. latchkey
 * itself honours a revocation everywhere within about 10 s (docs/design.md: "How fast a revocation
 * reaches every location"), so the TTL is capped at that bound: the cache can at most double the window,
 * never make it open-ended. Off by default.
 *
 * Only verdicts that cannot change back are cached: VALID (until the TTL or the key's expiry,
 * whichever comes first), and REVOKED, EXPIRED and MALFORMED, which are final. NOT_FOUND (a key just
 * created or imported elsewhere becomes valid), INSUFFICIENT_SCOPE, RESOURCE_NOT_ALLOWED and
 * IP_NOT_ALLOWED (an owner may change a key's powers and allow-list) and DISABLED (a key may be
 * enabled again) are always asked afresh, as is any error. Entries are found by the SHA-256 of the
 * key and the checks (the client's address included), so the cache holds no key.
 *
 * A verdict of a key with limits (rate limits or credits, its own or its owner's: it carries
 * `ratelimits`, `credits` or `owner_limits`) is
 * never cached, whatever its code: each verification of such a key must reach latchkey, which counts
 * it, or a cache would spend no credits and take no rate-limit tokens for the requests it answers —
 * the limits would hold per TTL instead of per request. RATE_LIMITED and USAGE_EXCEEDED are not
 * final either (a limit refills; credits are topped up). The one gap: a key that gains limits by an
 * update keeps its earlier, limit-free VALID verdict here for up to the TTL.
 *
 * latchkey's verdict is a union: the final refusals (REVOKED, EXPIRED, MALFORMED) carry only their
 * code and key id, and are kept as they came; only VALID, a live key's verdict, has an `expires_at`
 * to bound its entry by.
 */
import type { VerifyCode, VerifyOptions, VerifyResult } from "./types.js";

/** latchkey's revocation bound, in milliseconds: the longest a cached verdict may live. */
export const VERIFY_CACHE_MAX_TTL_MS = 10_000;

const FINAL: ReadonlySet<VerifyCode> = new Set<VerifyCode>(["VALID", "REVOKED", "EXPIRED", "MALFORMED"]);
const utf8 = new TextEncoder();

/** Does the verdict come from a key with limits, whose every verification latchkey must count? */
function hasLimits(verdict: VerifyResult): boolean {
  // A key whose owner has per-customer limits carries `owner_limits`: it is metered too.
  return "credits" in verdict || "ratelimits" in verdict || "owner_limits" in verdict;
}

export class VerdictCache {
  private readonly entries = new Map<string, { verdict: VerifyResult; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isFinite(ttlMs) || ttlMs < 0 || ttlMs > VERIFY_CACHE_MAX_TTL_MS)
      throw new RangeError(
        `verifyCacheTtlMs must be 0 to ${VERIFY_CACHE_MAX_TTL_MS} (latchkey's revocation bound), not ${ttlMs}`,
      );
    if (!Number.isInteger(maxEntries) || maxEntries < 1)
      throw new RangeError(`verifyCacheMaxEntries must be a positive integer, not ${maxEntries}`);
  }

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  /** The entry's name: a digest of the key and the checks asked for. */
  async entryFor(key: string, options: VerifyOptions): Promise<string> {
    const input = utf8.encode(
      JSON.stringify([key, options.scope ?? null, options.resource ?? null, options.ip ?? null]),
    );
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
    return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  get(entry: string): VerifyResult | undefined {
    const hit = this.entries.get(entry);
    if (hit === undefined) return undefined;
    if (hit.until <= this.now()) {
      this.entries.delete(entry);
      return undefined;
    }
    return structuredClone(hit.verdict);
  }

  set(entry: string, verdict: VerifyResult): void {
    if (!FINAL.has(verdict.code) || hasLimits(verdict)) return;
    const now = this.now();
    let until = now + this.ttlMs;
    if (verdict.code === "VALID" && verdict.expires_at !== null)
      until = Math.min(until, Date.parse(verdict.expires_at));
    if (!(until > now)) return;
    this.entries.delete(entry);
    this.entries.set(entry, { verdict: structuredClone(verdict), until });
    // Oldest first: a Map iterates in insertion order.
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }
}
