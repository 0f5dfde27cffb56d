/**
 * The credential forms verification accepts besides a bare latchkey key, recognised by shape alone
 * (pure, no storage), so that a string in no accepted form is refused before any lookup:
 *
 * - `<key id>|<latchkey key>`: the Laravel Sanctum form the autocalls dialect hands out. The key is
 *   the credential; the id (the key's UUID) must match the key's record, as Sanctum checks it.
 * - imported keys (POST /v1/keys/import) in the formats an operator enables with LEGACY_KEY_FORMATS.
 *   Each format says which strings are in it (its shape) and how a string becomes the stored digest
 *   (its scheme: `sha256` of the whole string, `sanctum` the SHA-256 of the secret part,
 *   `hmac` HMAC-SHA256 with LEGACY_HMAC_PEPPER, `bcrypt` by the token's lookup id):
 *   - `sanctum`: `<digits>|<secret>` or the bare `<secret>` (40-128 letters and digits);
 *   - `opaque:<prefix>`: `<prefix><16-256 token characters>`, e.g. `sk_live_...`;
 *   - `hex32`, `hex64`: exactly 32 or 64 lowercase hex characters, no prefix;
 *   - `base64url43`: exactly 43 base64url characters (32 random bytes, unpadded), no prefix;
 *   - `hmac-sha256:<shape>` (`hmac-sha256:hex64`, `hmac-sha256:opaque:sk_`): that shape, stored as the
 *     HMAC-SHA256 of the whole string under the operator's pepper until its first use, then as the
 *     SHA-256 of the whole string (the upgrade: service/hmac-upgrade.ts); without a pepper, only keys
 *     already upgraded are found;
 *   - `bcrypt`: `<lookup id>.<secret>` (id 1-64 of `A-Z a-z 0-9 _ -`, secret 16-72 token characters),
 *     stored as a bcrypt hash of the secret and found by its lookup id (keys/legacy-digest.ts).
 *
 * Shapes never overlap latchkey's own keys (`<prefix>_` + 49 characters, no `.`), and two enabled
 * formats whose shapes a string could be in at once are refused when they would look it up differently
 * (`overlapProblem`): each string has one lookup.
 *
 * Only latchkey's own keys are checksummed: a string in a legacy shape costs one lookup (then the
 * negative cache), like a well-formed unknown latchkey key. So an operator enables only the formats it
 * imports, and a deployment with none enabled pays nothing for this.
 */
import { isWellFormedKeyOf } from "./format";
import { UUID_V4 } from "./key-id";

/** An imported key's format, as import items name it and as records keep it. */
export const LEGACY_FORMATS = ["sanctum", "opaque", "hex32", "hex64", "base64url43", "hmac-sha256", "bcrypt"] as const;
export type LegacyFormat = (typeof LEGACY_FORMATS)[number];

/** How a presented string becomes the digest stored in `hash` (and, for bcrypt, the legacy hash). */
export type LegacyScheme = "sanctum" | "sha256" | "hmac" | "bcrypt";

/** The unprefixed shapes, by name. */
export const UNPREFIXED_SHAPES = {
  hex32: /^[0-9a-f]{32}$/,
  hex64: /^[0-9a-f]{64}$/,
  base64url43: /^[A-Za-z0-9_-]{43}$/,
};
export type UnprefixedShape = keyof typeof UNPREFIXED_SHAPES;

/** The shapes one scheme (SHA-256 or HMAC-SHA256 of the whole string) accepts. */
export interface WholeShapes {
  /** Opaque key prefixes, e.g. `sk_live_`. */
  readonly prefixes: readonly string[];
  readonly unprefixed: readonly UnprefixedShape[];
}

export interface LegacyFormats {
  readonly sanctum: boolean;
  /** Opaque key prefixes hashed with SHA-256 (`opaque:<prefix>`). */
  readonly prefixes: readonly string[];
  /** Unprefixed shapes hashed with SHA-256. */
  readonly unprefixed: readonly UnprefixedShape[];
  /** Shapes hashed with HMAC-SHA256 under LEGACY_HMAC_PEPPER. */
  readonly hmac: WholeShapes;
  readonly bcrypt: boolean;
}

export const NO_LEGACY_FORMATS: LegacyFormats = {
  sanctum: false,
  prefixes: [],
  unprefixed: [],
  hmac: { prefixes: [], unprefixed: [] },
  bcrypt: false,
};

/** A credential that is not a bare latchkey key: what to hash and look up, and what the record must be. */
export interface AlternateCredential {
  /** The string whose digest (by `scheme`) is the stored hash; for bcrypt, the whole token. */
  readonly material: string;
  /** How the record must have been stored: null for a latchkey key. */
  readonly scheme: LegacyScheme | null;
  /** The key id the credential names, which the record must have (null: none named). */
  readonly keyId: string | null;
  /** bcrypt: the token's lookup id and its secret (what the bcrypt hash is of). */
  readonly lookupId?: string;
  readonly secret?: string;
}

/** How each format's keys are stored: a record verifies only a credential of the same scheme. */
export function schemeOf(format: LegacyFormat): LegacyScheme {
  if (format === "sanctum" || format === "bcrypt") return format;
  return format === "hmac-sha256" ? "hmac" : "sha256";
}

/**
 * Whether a record of `format` (undefined: a latchkey key) may be verified by `alternate` (null: a
 * bare latchkey key): the same scheme. A bare latchkey key and a latchkey record pay two comparisons.
 */
export function sameScheme(format: LegacyFormat | undefined, alternate: AlternateCredential | null): boolean {
  if (format === undefined) return alternate === null || alternate.scheme === null;
  return alternate !== null && alternate.scheme === schemeOf(format);
}

const SANCTUM_ID = /^[0-9]{1,20}$/;
const SANCTUM_SECRET = /^[A-Za-z0-9]{40,128}$/;
const OPAQUE_PREFIX = /^[A-Za-z][A-Za-z0-9_-]{1,31}$/;
/** RFC 6750 token characters but `.` (so a JWT is never taken for a key). */
const OPAQUE_BODY = /^[A-Za-z0-9_~+/=-]{16,256}$/;
/** `<lookup id>.<secret>`: one `.`, so neither a latchkey key nor a JWT (two dots) is ever in it. */
export const BCRYPT_TOKEN = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_~+/=-]{16,72})$/;
export const LOOKUP_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_LENGTH = 300;

/** A shape an entry enables, for the overlap check. */
type Shape = { kind: "prefix"; prefix: string } | { kind: UnprefixedShape } | { kind: "sanctum" } | { kind: "bcrypt" };

const HEX = /^[0-9a-f]+$/;
const ALNUM = /^[A-Za-z0-9]+$/;

/** Whether one string could be in both shapes (pure; for the configuration). */
export function shapesOverlap(a: Shape, b: Shape): boolean {
  if (a.kind === "bcrypt" || b.kind === "bcrypt") return a.kind === b.kind; // only bcrypt tokens hold a `.`
  if (a.kind !== "prefix" && b.kind === "prefix") return shapesOverlap(b, a);
  if (a.kind === "prefix") {
    const p = a.prefix;
    if (b.kind === "prefix") return p.startsWith(b.prefix) || b.prefix.startsWith(p);
    if (b.kind === "hex32" || b.kind === "hex64") return HEX.test(p);
    if (b.kind === "base64url43") return true; // every prefix is base64url and shorter than 43
    return ALNUM.test(p); // sanctum's bare secret
  }
  if (a.kind === b.kind) return true;
  const pair = new Set([a.kind, b.kind]);
  // Sanctum's bare secret (40-128 letters and digits) can be 64 hex or 43 letters and digits.
  return pair.has("sanctum") && (pair.has("hex64") || pair.has("base64url43"));
}

const shapeName = (shape: Shape) => (shape.kind === "prefix" ? `opaque:${shape.prefix}` : shape.kind);

/**
 * Reads LEGACY_KEY_FORMATS: a comma list of `sanctum`, `opaque:<prefix>`, `hex32`, `hex64`,
 * `base64url43`, `hmac-sha256:<shape>` and `bcrypt` entries. Unusable entries are reported and left out
 * (never accepted): unknown ones, a prefix overlapping latchkey's, and an entry a string could share
 * with an earlier one of another scheme. (`hmac-sha256:<shape>` needs LEGACY_HMAC_PEPPER to import
 * and to verify keys not yet upgraded; without it, the entry finds upgraded keys only.)
 */
export function parseLegacyFormats(
  text: string | null,
  keyPrefix: string,
): { formats: LegacyFormats; errors: string[] } {
  const errors: string[] = [];
  let sanctum = false;
  let bcrypt = false;
  const sha: { prefixes: string[]; unprefixed: UnprefixedShape[] } = { prefixes: [], unprefixed: [] };
  const hmac: { prefixes: string[]; unprefixed: UnprefixedShape[] } = { prefixes: [], unprefixed: [] };
  const enabled: { shape: Shape; scheme: LegacyScheme; entry: string }[] = [];
  for (const entry of (text ?? "").split(",").map((e) => e.trim())) {
    if (!entry) continue;
    const isHmac = entry.startsWith("hmac-sha256:");
    const body = isHmac ? entry.slice("hmac-sha256:".length) : entry;
    const shape = shapeOf(body, keyPrefix);
    if (shape === null || (isHmac && (shape.kind === "sanctum" || shape.kind === "bcrypt"))) {
      errors.push(
        `LEGACY_KEY_FORMATS entry "${entry}" is not one of sanctum, opaque:<prefix> (2-32 letters, digits, _ or -, starting with a letter, not latchkey's own prefix), hex32, hex64, base64url43, hmac-sha256:<hex32|hex64|base64url43|opaque:<prefix>>, bcrypt; ignored`,
      );
      continue;
    }
    const scheme: LegacyScheme = isHmac
      ? "hmac"
      : shape.kind === "sanctum" || shape.kind === "bcrypt"
        ? shape.kind
        : "sha256";
    const clash = enabled.find((e) => e.scheme !== scheme && shapesOverlap(e.shape, shape));
    if (clash) {
      errors.push(
        `LEGACY_KEY_FORMATS entry "${entry}" overlaps "${clash.entry}" (a string could be in both, hashed differently); ignored`,
      );
      continue;
    }
    enabled.push({ shape, scheme, entry });
    const into = isHmac ? hmac : sha;
    if (shape.kind === "sanctum") sanctum = true;
    else if (shape.kind === "bcrypt") bcrypt = true;
    else if (shape.kind === "prefix") {
      if (!into.prefixes.includes(shape.prefix)) into.prefixes.push(shape.prefix);
    } else if (!into.unprefixed.includes(shape.kind)) into.unprefixed.push(shape.kind);
  }
  return { formats: { sanctum, prefixes: sha.prefixes, unprefixed: sha.unprefixed, hmac, bcrypt }, errors };
}

function shapeOf(entry: string, keyPrefix: string): Shape | null {
  if (entry === "sanctum" || entry === "bcrypt") return { kind: entry };
  if (entry in UNPREFIXED_SHAPES) return { kind: entry as UnprefixedShape };
  if (!entry.startsWith("opaque:")) return null;
  const prefix = entry.slice("opaque:".length);
  // A prefix overlapping latchkey's would make malformed latchkey keys cost lookups.
  const overlaps = prefix.startsWith(`${keyPrefix}_`) || `${keyPrefix}_`.startsWith(prefix);
  return OPAQUE_PREFIX.test(prefix) && !overlaps ? { kind: "prefix", prefix } : null;
}

/** Whether `candidate` is in one of the shapes, hashed whole. */
function inWholeShapes(candidate: string, shapes: WholeShapes): boolean {
  for (const prefix of shapes.prefixes) {
    if (candidate.startsWith(prefix) && OPAQUE_BODY.test(candidate.slice(prefix.length))) return true;
  }
  return shapes.unprefixed.some((shape) => UNPREFIXED_SHAPES[shape].test(candidate));
}

/** Which accepted format a bare string is in, or null. */
function legacyShape(candidate: string, formats: LegacyFormats): AlternateCredential | null {
  if (inWholeShapes(candidate, formats)) return { material: candidate, scheme: "sha256", keyId: null };
  if (formats.sanctum && SANCTUM_SECRET.test(candidate)) return { material: candidate, scheme: "sanctum", keyId: null };
  if (inWholeShapes(candidate, formats.hmac)) return { material: candidate, scheme: "hmac", keyId: null };
  if (formats.bcrypt) {
    const token = BCRYPT_TOKEN.exec(candidate);
    if (token) return { material: candidate, scheme: "bcrypt", keyId: null, lookupId: token[1]!, secret: token[2]! };
  }
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
  if (UUID_V4.test(id) && isWellFormedKeyOf(secret, keyPrefixes)) return { material: secret, scheme: null, keyId: id };
  if (formats.sanctum && SANCTUM_ID.test(id) && SANCTUM_SECRET.test(secret)) {
    return { material: secret, scheme: "sanctum", keyId: null };
  }
  return null;
}

/** The Sanctum-form token for a latchkey key: `<key id>|<key>`. */
export function sanctumToken(id: string, key: string): string {
  return `${id}|${key}`;
}

/** Whether `format` is enabled in `formats`. */
export function formatEnabled(format: LegacyFormat, formats: LegacyFormats): boolean {
  return enabledFormats(formats).includes(format);
}

/** The formats import items may name here, in LEGACY_FORMATS order. */
export function enabledFormats(formats: LegacyFormats): LegacyFormat[] {
  const on: Record<LegacyFormat, boolean> = {
    sanctum: formats.sanctum,
    opaque: formats.prefixes.length > 0,
    hex32: formats.unprefixed.includes("hex32"),
    hex64: formats.unprefixed.includes("hex64"),
    base64url43: formats.unprefixed.includes("base64url43"),
    "hmac-sha256": formats.hmac.prefixes.length + formats.hmac.unprefixed.length > 0,
    bcrypt: formats.bcrypt,
  };
  return LEGACY_FORMATS.filter((format) => on[format]);
}
