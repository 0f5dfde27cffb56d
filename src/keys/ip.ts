/**
 * IP allow-lists: strict parsing of IPv4/IPv6 addresses and CIDR ranges, and the matcher that runs when
 * a key with an allow-list is verified. Pure and synchronous.
 *
 * Strict, because an allow-list is a security boundary and a lenient parser widens it silently: IPv4 is
 * four decimal octets without leading zeros (`010.0.0.1` is octal to some parsers), IPv6 is RFC 4291
 * text without zone ids, and a range may not have host bits set (`10.0.0.1/8` is refused, not read as
 * `10.0.0.0/8`, since the writer may have meant `/32`).
 *
 * An address is a version and a 128-bit number. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`), as a
 * dual-stack socket reports an IPv4 client, is treated as the IPv4 address, on both sides; otherwise an
 * IPv4 range never matches an IPv6 address nor the reverse (`::/0` is every IPv6 address, not every one).
 */

interface Address {
  readonly v6: boolean;
  readonly value: bigint;
}

interface Range {
  readonly v6: boolean;
  /** The network address with host bits clear. */
  readonly base: bigint;
  readonly prefix: number;
}

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX_LENGTH = /^(?:0|[1-9][0-9]{0,2})$/;
/** ::ffff:0:0/96, where IPv4-mapped addresses live. */
const MAPPED_BASE = 0xffffn << 32n;
const MAX_TEXT_LENGTH = 64;

function parseIpv4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!DECIMAL_OCTET.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseGroups(text: string): bigint[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: bigint[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part);
      if (v4 === null) return null;
      groups.push(v4 >> 16n, v4 & 0xffffn);
    } else if (HEX_GROUP.test(part)) {
      groups.push(BigInt(`0x${part}`));
    } else {
      return null;
    }
  }
  return groups;
}

function parseIpv6(text: string): bigint | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  // An embedded IPv4 address may only end the address.
  if (halves.length === 2 && halves[0]!.includes(".")) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  let value = 0n;
  for (const group of [...head, ...Array<bigint>(missing).fill(0n), ...tail]) value = (value << 16n) | group;
  return value;
}

/** The address, with an IPv4-mapped IPv6 address read as IPv4; null when `text` is not exactly an address. */
export function parseAddress(text: string): Address | null {
  if (text.length === 0 || text.length > MAX_TEXT_LENGTH) return null;
  if (!text.includes(":")) {
    const v4 = parseIpv4(text);
    return v4 === null ? null : { v6: false, value: v4 };
  }
  const v6 = parseIpv6(text);
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { v6: false, value: v6 & 0xffffffffn };
  return { v6: true, value: v6 };
}

const bitsOf = (v6: boolean) => (v6 ? 128 : 32);

function mask(v6: boolean, prefix: number): bigint {
  const bits = bitsOf(v6);
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
}

/** An address or CIDR range, or a message saying what is wrong with it. */
export function parseRange(text: string): Range | string {
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const raw = parseAddress(addressText);
  if (raw === null) return "Must be an IPv4 or IPv6 address or CIDR range, e.g. 203.0.113.7 or 2001:db8::/32";
  // A mapped address written in IPv6 form counts its prefix in IPv6 bits.
  const writtenV6 = addressText.includes(":");
  let prefix = bitsOf(writtenV6);
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!PREFIX_LENGTH.test(prefixText) || Number(prefixText) > prefix) {
      return `The prefix length must be a whole number from 0 to ${prefix}`;
    }
    prefix = Number(prefixText);
  }
  let v6 = raw.v6;
  let value = raw.value;
  if (writtenV6 && !raw.v6) {
    if (prefix < 96) {
      // Wider than the mapped block: an IPv6 range that happens to contain it.
      v6 = true;
      value = MAPPED_BASE | raw.value;
    } else {
      prefix -= 96;
    }
  }
  const base = value & mask(v6, prefix);
  if (base !== value) return "The range has host bits set: give its network address (or a /32 or /128 for one address)";
  return { v6, base, prefix };
}

function contains(range: Range, address: Address): boolean {
  return range.v6 === address.v6 && (address.value & mask(range.v6, range.prefix)) === range.base;
}

/** A compiled allow-list: true when `ip` (a client address as text) is in one of its ranges. */
export type IpMatcher = (ip: string | undefined) => boolean;

/**
 * Compiles a stored allow-list (already validated by `parseRange`). An entry that no longer parses
 * matches nothing, so a bad row can only narrow a list, never widen it.
 */
export function compileAllowList(entries: readonly string[]): IpMatcher {
  const ranges = entries.map(parseRange).filter((range): range is Range => typeof range !== "string");
  return (ip) => {
    if (ip === undefined) return false;
    const address = parseAddress(ip);
    return address !== null && ranges.some((range) => contains(range, address));
  };
}

/** Is every range of `child` (null: any address) inside some range of `parent` (null: any address)? */
export function rangesWithin(parent: readonly string[] | null, child: readonly string[] | null): boolean {
  if (parent === null) return true;
  if (child === null) return false;
  const outer = parent.map(parseRange).filter((range): range is Range => typeof range !== "string");
  return child.every((entry) => {
    const inner = parseRange(entry);
    if (typeof inner === "string") return false;
    return outer.some(
      (range) =>
        range.v6 === inner.v6 && range.prefix <= inner.prefix && contains(range, { v6: inner.v6, value: inner.base }),
    );
  });
}

/** Compiled allow-lists, by the record's list: compiled once per record read, not per verification. */
const allowLists = new WeakMap<readonly string[], IpMatcher>();

export function ipAllowed(allowedIps: readonly string[], ip: string | undefined): boolean {
  let matcher = allowLists.get(allowedIps);
  if (!matcher) {
    matcher = compileAllowList(allowedIps);
    allowLists.set(allowedIps, matcher);
  }
  return matcher(ip);
}
