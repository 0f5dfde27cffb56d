/**
 * An imported key's display `start` must look like the beginning of a key in its format, so that a page
 * listing keys shows what the key is: no control, bidirectional or invisible character (a start cannot
 * pose as `lk_…` or hide what follows), the format's characters, and for a prefixed format an enabled
 * prefix. Pure.
 */
import type { LegacyFormat, LegacyFormats, WholeShapes } from "./legacy";

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
const HEX_START = /^[0-9a-f]*$/;
const BASE64URL_START = /^[A-Za-z0-9_-]*$/;
const BCRYPT_SECRET_START = /^[A-Za-z0-9_~+/=-]*$/;

/** Where a start of an unprefixed shape, or of the shapes an HMAC entry enables, may be. */
function wholeShapesProblem(start: string, shapes: WholeShapes): string | null {
  const prefix = shapes.prefixes.find((p) => start.startsWith(p));
  if (prefix !== undefined) {
    return OPAQUE_START_BODY.test(start.slice(prefix.length))
      ? null
      : `Must be the key's first characters: ${prefix} then letters, digits or _~+/=-`;
  }
  if (shapes.unprefixed.some((s) => s !== "base64url43") && HEX_START.test(start)) return null;
  if (shapes.unprefixed.includes("base64url43") && BASE64URL_START.test(start)) return null;
  const accepted = [...shapes.prefixes.map((p) => `${p}…`), ...shapes.unprefixed];
  return `Must be the beginning of a key in an accepted shape (${accepted.join(", ")})`;
}

/**
 * Why `start` cannot be the display start of an imported key in `format`, or null. `lookupId` is a
 * bcrypt item's lookup id (its start is the beginning of `<lookup id>.<secret>`); `keyPrefixes` are
 * latchkey's own, which no unprefixed start may begin with.
 */
export function importedStartProblem(
  start: string,
  format: LegacyFormat,
  formats: LegacyFormats,
  keyPrefixes: readonly string[] = [],
  lookupId?: string,
): string | null {
  const hidden = HIDDEN_OR_CONTROL.exec(start)?.[0];
  if (hidden !== undefined) {
    const code = (hidden.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
    return `Must not contain control, bidirectional, invisible or space characters (found U+${code})`;
  }
  switch (format) {
    case "sanctum":
      return SANCTUM_START.test(start)
        ? null
        : "Must be the beginning of a Sanctum token: `<id>|<secret>` or the secret alone (letters and digits)";
    case "opaque": {
      const prefix = formats.prefixes.find((p) => start.startsWith(p));
      if (prefix === undefined) return `Must begin with an accepted prefix (${formats.prefixes.join(", ")})`;
      if (!OPAQUE_START_BODY.test(start.slice(prefix.length))) {
        return `Must be the key's first characters: ${prefix} then letters, digits or _~+/=-`;
      }
      return null;
    }
    case "hex32":
    case "hex64":
      return HEX_START.test(start) ? null : "Must be the key's first characters: lowercase hex digits";
    case "base64url43":
      return BASE64URL_START.test(start) && !keyPrefixes.some((p) => start.startsWith(`${p}_`))
        ? null
        : "Must be the key's first characters: letters, digits, _ or - (and not latchkey's own prefix)";
    case "hmac-sha256":
      return wholeShapesProblem(start, formats.hmac);
    case "bcrypt": {
      const head = `${lookupId ?? ""}.`;
      const fits = start.length <= head.length ? head.startsWith(start) : start.startsWith(head);
      return fits && BCRYPT_SECRET_START.test(start.slice(head.length))
        ? null
        : "Must be the beginning of the token `<lookup_id>.<secret>`";
    }
  }
}
