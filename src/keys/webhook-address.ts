/**
 * Where a webhook may be delivered: the URL rule checked at registration and the address rule checked
 * again before every delivery (against DNS rebinding). Pure and synchronous.
 *
 * A deployed latchkey delivers only to `https:` URLs whose host is a public name or a public address:
 * no private (RFC 1918), loopback, link-local (the cloud metadata address 169.254.169.254 among them),
 * CGNAT, benchmarking, documentation, multicast or reserved IPv4 ranges, and no unspecified, loopback,
 * unique-local, link-local, site-local, multicast, documentation, NAT64, 6to4 or Teredo IPv6 ranges
 * (those embed IPv4 addresses a receiver could pick). Local development (WEBHOOK_ALLOW_LOOPBACK) also
 * allows `http://127.0.0.1:<port>`, and nothing else private.
 */
import { compileAllowList, parseAddress } from "./ip";

/** Every range a webhook may never reach, IPv4 then IPv6. */
export const REFUSED_RANGES: readonly string[] = [
  "0.0.0.0/8", // "this network"
  "10.0.0.0/8", // private
  "100.64.0.0/10", // CGNAT (shared address space)
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local, cloud metadata
  "172.16.0.0/12", // private
  "192.0.0.0/24", // IETF protocol assignments
  "192.0.2.0/24", // documentation
  "192.88.99.0/24", // 6to4 relay
  "192.168.0.0/16", // private
  "198.18.0.0/15", // benchmarking
  "198.51.100.0/24", // documentation
  "203.0.113.0/24", // documentation
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, broadcast
  "::/128", // unspecified
  "::1/128", // loopback
  "64:ff9b::/96", // NAT64
  "64:ff9b:1::/48", // local NAT64
  "100::/64", // discard
  "2001::/32", // Teredo
  "2001:db8::/32", // documentation
  "2002::/16", // 6to4
  "fc00::/7", // unique local
  "fe80::/10", // link-local
  "fec0::/10", // site-local (deprecated)
  "ff00::/8", // multicast
];

const refused = compileAllowList(REFUSED_RANGES);

/** Host names that always mean a private network, whatever DNS says. */
const PRIVATE_NAMES = /(?:^|\.)(?:localhost|local|internal|intranet|lan|home\.arpa|localdomain)$/;

/** Whether `ip` (an address as text, without brackets) is one a webhook may never reach. */
export function isRefusedAddress(ip: string): boolean {
  const address = parseAddress(ip);
  if (address === null) return true; // not an address we can judge: refuse
  return refused(ip);
}

/** The URL's host without IPv6 brackets. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
}

/** A host that is an IP literal, or null for a name. */
export function literalAddress(host: string): string | null {
  return parseAddress(host) === null ? null : host;
}

/** Local development's one exception: `http://127.0.0.1:<port>`, when WEBHOOK_ALLOW_LOOPBACK is on. */
export function isAllowedLoopback(url: URL, allowLoopback: boolean): boolean {
  return allowLoopback && url.hostname === "127.0.0.1" && (url.protocol === "http:" || url.protocol === "https:");
}

/**
 * Why `text` may not be a webhook URL, or null when it may (a DNS name still gets its answers checked
 * before each delivery). Credentials in the URL are refused: the URL is shown to everyone who may read
 * the endpoint, and the signature authenticates the sender.
 */
export function webhookUrlProblem(text: string, allowLoopback: boolean): string | null {
  if (!URL.canParse(text)) return "Must be an absolute URL, e.g. https://hooks.example.com/latchkey";
  const url = new URL(text);
  if (url.username !== "" || url.password !== "") return "Must not contain a user name or password";
  if (isAllowedLoopback(url, allowLoopback)) return null;
  if (url.protocol !== "https:") return "Must be an https URL";
  const host = hostOf(url);
  if (literalAddress(host) !== null) {
    return isRefusedAddress(host) ? "Must not point to a private, loopback, link-local or reserved address" : null;
  }
  if (!host.includes(".") || PRIVATE_NAMES.test(host)) return "Must be a public host name";
  return null;
}
