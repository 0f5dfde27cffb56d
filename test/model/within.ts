/**
 * The model test's oracle for "no stronger than": written apart from src/ on purpose (a slip in
 * src/keys/scopes.ts or src/keys/ip.ts must not slip into the oracle too), from the rules of
 * docs/permissions.md ("Management with a key: attenuation, never escalation") and docs/usage-limits.md:
 *
 * - scopes: each of the key's scopes is covered by one of the minter's: `*` covers everything,
 *   `resource:*` covers `resource:` and everything under it (a `resource:*` scope included), any other
 *   pattern only itself;
 * - resources: a minter with a list (not null) holds only keys whose list (not null) is a subset of it;
 * - expiry: an expiring minter holds only keys that expire, no later than it;
 * - allow-list: a minter with a list holds only keys with a list, each entry inside one of its ranges
 *   (IPv4 and CIDR: the model only uses IPv4);
 * - limits: a minter with usage limits holds only keys with limits on its own counters (usage chain).
 */

export interface Powers {
  readonly scopes: readonly string[];
  readonly resources: readonly string[] | null;
  readonly expiresAt: number | null;
  readonly allowedIps: readonly string[] | null;
}

export interface Usage {
  /** Has rate limits or credits. */
  readonly limited: boolean;
  /** The counters it spends: `usage_id`, or its own id. */
  readonly chain: string;
}

function covers(pattern: string, scope: string): boolean {
  if (pattern === "*" || pattern === scope) return true;
  return pattern.endsWith(":*") && scope.startsWith(pattern.slice(0, -1));
}

/** An IPv4 address or CIDR range as [first, last] (inclusive), or null when it is not one. */
function range(entry: string): [number, number] | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(entry);
  if (!match) return null;
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) return null;
  const bits = match[5] === undefined ? 32 : Number(match[5]);
  if (bits > 32) return null;
  const value = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  const first = Math.floor(value / size) * size;
  return [first, first + size - 1];
}

function inside(outer: string, inner: string): boolean {
  const [o, i] = [range(outer), range(inner)];
  return o !== null && i !== null && o[0] <= i[0] && i[1] <= o[1];
}

const iso = (ms: number | null) => (ms === null ? "never" : new Date(ms).toISOString());

/** What of `key`'s powers exceeds `minter`'s, in words (empty: within). */
export function excess(minter: Powers, key: Powers): string[] {
  const found: string[] = [];
  const uncovered = key.scopes.filter((scope) => !minter.scopes.some((pattern) => covers(pattern, scope)));
  if (uncovered.length > 0)
    found.push(`scopes ${JSON.stringify(uncovered)} not covered by ${JSON.stringify(minter.scopes)}`);
  if (minter.resources !== null) {
    const held = minter.resources;
    if (key.resources === null || key.resources.some((r) => !held.includes(r))) {
      found.push(`resources ${JSON.stringify(key.resources)} not within ${JSON.stringify(held)}`);
    }
  }
  if (minter.expiresAt !== null && (key.expiresAt === null || key.expiresAt > minter.expiresAt)) {
    found.push(`expires ${iso(key.expiresAt)}, after ${iso(minter.expiresAt)}`);
  }
  if (minter.allowedIps !== null) {
    const held = minter.allowedIps;
    if (key.allowedIps === null || key.allowedIps.some((entry) => !held.some((outer) => inside(outer, entry)))) {
      found.push(`allowed_ips ${JSON.stringify(key.allowedIps)} not within ${JSON.stringify(held)}`);
    }
  }
  return found;
}

/** What of `key`'s usage is looser than `minter`'s (null: not looser). */
export function looserUsage(minter: Usage, key: Usage): string | null {
  if (!minter.limited) return null;
  if (!key.limited) return "no usage limits, though the minter has some";
  if (key.chain !== minter.chain) return `usage counters ${key.chain}, not the minter's ${minter.chain}`;
  return null;
}
