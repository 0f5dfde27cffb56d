/**
 * What a presented key is looked up by: its form, told by shape alone (keys/format.ts, keys/legacy.ts),
 * then the digest of that form (the SHA-256 of a bare latchkey key; an imported key's by its scheme,
 * service/legacy-check.ts). Two steps, so a caller can decide from the form before paying for a hash.
 */
import type { Config } from "../config";
import { isWellFormedKeyOf } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import { type AlternateCredential, alternateCredential } from "../keys/legacy";
import { type BcryptCredential, legacyCredential } from "./legacy-check";
import type { HmacCredential } from "./hmac-upgrade";

/** What a presented key is looked up by. */
export interface Credential {
  readonly hash: string;
  /** Set when the key was presented in another form than a bare latchkey key. */
  readonly alternate: AlternateCredential | null;
  /** A token in the bcrypt shape: checked against the record's legacy hash (service/legacy-check.ts). */
  readonly bcrypt?: BcryptCredential;
  /** A token in an HMAC shape: found by its SHA-256 once upgraded, else by its HMAC digest (service/hmac-upgrade.ts). */
  readonly hmac?: HmacCredential;
}

/** A key's form: null for a bare latchkey key, its other accepted form, or undefined for none (MALFORMED). */
export type KeyForm = AlternateCredential | null | undefined;

/** `key`'s form by shape alone: no hash, no storage. */
export function formOf(key: string, config: Pick<Config, "acceptedPrefixes" | "legacyFormats">): KeyForm {
  if (isWellFormedKeyOf(key, config.acceptedPrefixes)) return null;
  return alternateCredential(key, config.acceptedPrefixes, config.legacyFormats) ?? undefined;
}

/**
 * The hash to look up: of the key itself when it is a bare latchkey key, else of the secret of its
 * Sanctum form or of an imported key in an enabled format; null (MALFORMED, no storage) otherwise.
 */
export async function credentialOf(key: string, form: KeyForm, pepper: string | null): Promise<Credential | null> {
  if (form === undefined) return null;
  if (form === null) return { hash: await sha256Hex(key), alternate: null };
  return legacyCredential(key, form, pepper);
}
