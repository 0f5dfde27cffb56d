/**
 * The credential forms verification accepts besides a bare latchkey key, recognised by shape alone
 * (pure, no storage), so that a string in no accepted form is refused before any lookup:
 *
 * - `<key id>|<latchkey key>`: the Laravel Sanctum form the autocalls dialect hands out. The key is
 *   the credential; the id (the key's UUID) must match the key's record, as Sanctum checks it.
 * - imported keys (POST /v1/keys/import) in the formats an operator enables with LEGACY_KEY_FORMATS:
 *   - `sanctum`: `<digits>|<secret>` or the bare `<secret>` (40-128 letters and digits), stored by
 *     Laravel as the SHA-256 of the secret part, so that is what is looked up; the numeric id is
 *     Sanctum's row id, which latchkey does not keep (the secret alone is the credential);
 *   - `opaque:<prefix>`: `<prefix><16-256 token characters>`, e.g. `sk_live_...`, looked up by the
 *     SHA-256 of the whole string.
 *
 * An imported key's display `start` (`importedStartProblem`) must look like the beginning of a key in its
 * format, so that a page listing keys shows what the key is: no control, bidirectional or invisible
 * character (a start cannot pose as `lk_…` or hide what follows), and the format's accepted prefix.
 *
 * Only latchkey's own keys are checksummed: a string in a legacy shape costs one lookup (then the
 * negative cache), like a well-formed unknown latchkey key. So an operator enables only the formats it
 * imports, and a deployment with none enabled pays nothing for this.
 */
import { isWellFormedKeyOf } from "./format";
import { UUID_V4 } from "./key-id";

export type LegacyFormat = "sanctum" | "opaque";

export interface LegacyFormats {
  readonly sanctum: boolean;
  /** Opaque key prefixes, e.g. `sk_live_`. */
  readonly prefixes: readonly string[];
}

export const NO_LEGACY_FORMATS: LegacyFormats = { sanctum: false, prefixes: [] };

/** A credential that is not a bare latchkey key: what to hash and look up, and what the record must be. */
export interface AlternateCredential {
  /** The string whose SHA-256 is the stored hash. */
  readonly material: string;
  /** The record's format: null for a latchkey key. */
  readonly format: LegacyFormat | null;
  /** The key id the credential names, which the record must have (null: none named). */
  readonly keyId: string | null;
}

const SANCTUM_ID = /^[0-9]{1,20}$/;
const SANCTUM_SECRET = /^[A-Za-z0-9]{40,128}$/;
const OPAQUE_PREFIX = /^[A-Za-z][A-Za-z0-9_-]{1,31}$/;
/** RFC 6750 token characters but `.` (so a JWT is never taken for a key). */
const OPAQUE_BODY = /^[A-Za-z0-9_~+/=-]{16,256}$/;
const MAX_LENGTH = 300;

/**
 * Reads LEGACY_KEY_FORMATS: a comma list of `sanctum` and `opaque:<prefix>` entries. Unusable
 * entries are reported and left out (never accepted).
 */
export function parseLegacyFormats(
  text: string | null,
  keyPrefix: string,
): { formats: LegacyFormats; errors: string[] } {
  const errors: string[] = [];
  let sanctum = false;
  const prefixes: string[] = [];
  for (const entry of (text ?? "").split(",").map((e) => e.trim())) {
    if (!entry) continue;
    if (entry === "sanctum") {
      sanctum = true;
      continue;
    }
    const prefix = entry.startsWith("opaque:") ? entry.slice("opaque:".length) : null;
    // A prefix overlapping latchkey's would make malformed latchkey keys cost lookups.
    const overlaps = prefix !== null && (prefix.startsWith(`${keyPrefix}_`) || `${keyPrefix}_`.startsWith(prefix));
    if (prefix === null || !OPAQUE_PREFIX.test(prefix) || overlaps) {
      errors.push(
        `LEGACY_KEY_FORMATS entry "${entry}" is not "sanctum" nor "opaque:<prefix>" (2-32 letters, digits, _ or -, starting with a letter, not latchkey's own prefix); ignored`,
      );
      continue;
    }
    if (!prefixes.includes(prefix)) prefixes.push(prefix);
  }
  return { formats: { sanctum, prefixes }, errors };
}

/** Which accepted format a bare string is in, or null. Opaque prefixes are checked first. */
function legacyShape(candidate: string, formats: LegacyFormats): AlternateCredential | null {
  for (const prefix of formats.prefixes) {
    if (candidate.startsWith(prefix) && OPAQUE_BODY.test(candidate.slice(prefix.length))) {
      return { material: candidate, format: "opaque", keyId: null };
    }
  }
  if (formats.sanctum && SANCTUM_SECRET.test(candidate)) return { material: candidate, format: "sanctum", keyId: null };
  return null;
}

/**
 * The credential `candidate` stands for, when it is not a bare latchkey key (checked first by the
 * caller, on the hot path); null when it is in no accepted form.
 */
export function alternateCredential(
  candidate: string,
  keyPrefixes: readonly string[],
  formats: LegacyFormats,
): AlternateCredential | null {
  if (candidate.length > MAX_LENGTH) return null;
  const bar = candidate.indexOf("|");
  if (bar === -1) return legacyShape(candidate, formats);
  const id = candidate.slice(0, bar);
  const secret = candidate.slice(bar + 1);
  if (UUID_V4.test(id) && isWellFormedKeyOf(secret, keyPrefixes)) return { material: secret, format: null, keyId: id };
  if (formats.sanctum && SANCTUM_ID.test(id) && SANCTUM_SECRET.test(secret)) {
    return { material: secret, format: "sanctum", keyId: null };
  }
  return null;
}

/** The Sanctum-form token for a latchkey key: `<key id>|<key>`. */
export function sanctumToken(id: string, key: string): string {
  return `${id}|${key}`;
}

/**
 * Characters a display start never holds: controls (C0, DEL, C1), format characters (bidirectional
 * embeddings, overrides, isolates and marks U+202A-202E, U+2066-2069, U+200E/F, U+061C; zero-width
 * U+200B-200D, U+2060, U+FEFF; tags), separators and spaces, combining marks (variation selectors,
 * U+034F), private use, unassigned code points, and the blank letters (Hangul fillers, braille blank).
 */
const HIDDEN_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Z}\p{M}\p{Co}\p{Cn}\u115f\u1160\u3164\uffa0\u2800]/u;
/** The beginning of a Sanctum token: `<id>|<secret…>`, or of the bare secret. */
const SANCTUM_START = /^(?:[0-9]{1,20}\|)?[A-Za-z0-9]*$/;
/** The beginning of an opaque key's body (after its prefix). */
const OPAQUE_START_BODY = /^[A-Za-z0-9_~+/=-]*$/;

/**
 * Why `start` cannot be the display start of an imported key in `format`, or null. An opaque key's
 * begins with one of the enabled prefixes (`opaque:<prefix>`); a Sanctum key's is the beginning of
 * `<id>|<secret>` or of the secret (digits and letters). Neither holds a hidden or control character.
 */
export function importedStartProblem(start: string, format: LegacyFormat, formats: LegacyFormats): string | null {
  const hidden = HIDDEN_OR_CONTROL.exec(start)?.[0];
  if (hidden !== undefined) {
    const code = (hidden.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
    return `Must not contain control, bidirectional, invisible or space characters (found U+${code})`;
  }
  if (format === "sanctum") {
    return SANCTUM_START.test(start)
      ? null
      : "Must be the beginning of a Sanctum token: `<id>|<secret>` or the secret alone (letters and digits)";
  }
  const prefix = formats.prefixes.find((p) => start.startsWith(p));
  if (prefix === undefined) return `Must begin with an accepted prefix (${formats.prefixes.join(", ")})`;
  if (!OPAQUE_START_BODY.test(start.slice(prefix.length))) {
    return `Must be the key's first characters: ${prefix} then letters, digits or _~+/=-`;
  }
  return null;
}
