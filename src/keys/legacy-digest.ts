/**
 * The digests of imported keys that are not a plain SHA-256 (keys/legacy.ts): HMAC-SHA256 under the
 * operator's pepper (LEGACY_HMAC_PEPPER, its UTF-8 bytes as the HMAC key, as PHP's `hash_hmac` and
 * Python's `hmac.new(pepper.encode(), …)` use it), and bcrypt, found by the token's lookup id.
 *
 * A bcrypt key's record is stored under `bcryptLookupHash(lookup id)` (bcrypt hashes cannot be
 * searched); its bcrypt hash is checked once, on first use, and then replaced by the SHA-256 of the
 * whole token (`isUpgradedDigest`), which every later verification compares instead. An HMAC key's
 * record is stored under its HMAC digest until its first use, then under the SHA-256 of the whole
 * token (service/hmac-upgrade.ts), which is where a token in an HMAC shape is looked up first.
 */
import bcrypt from "bcryptjs";
import { sha256Hex } from "./hash";
import type { AlternateCredential } from "./legacy";

/** A bcrypt hash as import items carry it: `$2a$`, `$2b$` or `$2y$`, a cost of 04-31, 53 characters. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** The cost factor of a bcrypt hash. */
export function bcryptCost(hash: string): number {
  return Number(hash.slice(4, 6));
}

const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(pepper: string): Promise<CryptoKey> {
  let key = hmacKeys.get(pepper);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(pepper), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    hmacKeys.clear(); // one pepper per deployment: never more than one key kept
    hmacKeys.set(pepper, key);
  }
  return key;
}

/** HMAC-SHA256 of `text` under `pepper`, as lowercase hex. */
export async function hmacSha256Hex(pepper: string, text: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(pepper), new TextEncoder().encode(text));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Where a bcrypt key's record is stored: a digest of its lookup id no other format's string can have. */
export function bcryptLookupHash(lookupId: string): Promise<string> {
  return sha256Hex(`bcrypt-lookup:${lookupId}`);
}

/**
 * The stored hash a legacy credential is looked up by (first: an HMAC key not yet upgraded is then
 * looked up by its HMAC digest, service/hmac-upgrade.ts).
 */
export function legacyLookupHash(alternate: AlternateCredential): Promise<string> {
  if (alternate.scheme === "bcrypt") return bcryptLookupHash(alternate.lookupId ?? "");
  return sha256Hex(alternate.material);
}

/** Whether a bcrypt key's legacy hash has been upgraded to the SHA-256 of the whole token. */
export function isUpgradedDigest(legacyHash: string): boolean {
  return HEX64.test(legacyHash);
}

/** The slow check: whether `secret` is the one `hash` (bcrypt) was made from. */
export function bcryptMatches(secret: string, hash: string): Promise<boolean> {
  return bcrypt.compare(secret, hash);
}

/** Equal hex strings, compared in time independent of where they differ. */
export function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
