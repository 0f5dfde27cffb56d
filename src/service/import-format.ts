/**
 * An import item's format and what is stored for it (keys/legacy.ts): the format must be enabled, and
 * named whenever more than one is (never defaulted to a guess); the `hash` must be of the format's kind
 * (64 hex for SHA-256 and HMAC-SHA256, a bcrypt hash with a `lookup_id` for bcrypt); the `start` must look
 * like the format's keys; and no field may hold the key itself. Pure but for hashing.
 */
import { sha256Hex } from "../keys/hash";
import { type LegacyFormat, type LegacyFormats, LOOKUP_ID, enabledFormats } from "../keys/legacy";
import { BCRYPT_HASH, bcryptLookupHash, hmacSha256Hex } from "../keys/legacy-digest";
import { importedStartProblem } from "../keys/legacy-start";
import type { ImportKeyInput } from "../schemas";

const HEX64 = /^[0-9a-f]{64}$/;

export interface ImportSettings {
  readonly legacyFormats: LegacyFormats;
  readonly legacyHmacPepper: string | null;
  readonly acceptedPrefixes: readonly string[];
}

/** What a valid item is stored as: its format, the hash it is found by and, for bcrypt, its bcrypt hash. */
export interface ImportedDigest {
  readonly format: LegacyFormat;
  readonly hash: string;
  readonly legacyHash?: string;
}

export type ImportFormatOutcome = ImportedDigest | { readonly field: string; readonly message: string };

/** The item's format: the one it names, or the only one enabled; a problem naming `format` otherwise. */
export function itemFormat(
  format: LegacyFormat | undefined,
  formats: LegacyFormats,
): LegacyFormat | { field: string; message: string } {
  const enabled = enabledFormats(formats);
  if (format === undefined) {
    if (enabled.length === 1) return enabled[0]!;
    return {
      field: "format",
      message:
        enabled.length === 0
          ? "No imported key format is accepted here: the operator enables them with LEGACY_KEY_FORMATS"
          : `Required: this deployment accepts several formats (${enabled.join(", ")}); name the key's`,
    };
  }
  if (!enabled.includes(format)) {
    return {
      field: "format",
      message: `${format} keys are not accepted here: the operator enables them with LEGACY_KEY_FORMATS`,
    };
  }
  return format;
}

/** Checks an import item against the deployment's formats: what to store, or the first problem. */
export async function importedDigest(item: ImportKeyInput, settings: ImportSettings): Promise<ImportFormatOutcome> {
  const format = itemFormat(item.format, settings.legacyFormats);
  if (typeof format !== "string") return format;
  if (format === "hmac-sha256" && settings.legacyHmacPepper === null) {
    return {
      field: "format",
      message:
        "hmac-sha256 keys are imported only with the LEGACY_HMAC_PEPPER secret set (without it, only keys already upgraded on first use verify)",
    };
  }
  const lookupId = item.lookup_id;
  if (format === "bcrypt") {
    if (!BCRYPT_HASH.test(item.hash)) {
      return { field: "hash", message: "Must be the key's bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31)" };
    }
    if (lookupId === undefined) return { field: "lookup_id", message: "Required for bcrypt keys: the token's id part" };
    if (!LOOKUP_ID.test(lookupId)) return { field: "lookup_id", message: "Must be 1-64 letters, digits, _ or -" };
  } else {
    if (!HEX64.test(item.hash)) {
      return {
        field: "hash",
        message: `Must be the key's ${format === "hmac-sha256" ? "HMAC-" : ""}SHA-256 as 64 lowercase hex characters`,
      };
    }
    if (lookupId !== undefined) return { field: "lookup_id", message: "Only bcrypt keys have a lookup id" };
  }
  const badStart =
    item.start === undefined
      ? null
      : importedStartProblem(item.start, format, settings.legacyFormats, settings.acceptedPrefixes, lookupId);
  if (badStart !== null) return { field: "start", message: badStart };
  const leaked = await fieldHoldingKey(item, format, settings.legacyHmacPepper);
  if (leaked !== null) return { field: leaked, message: "Holds the key itself: send only its hash in hash" };
  return format === "bcrypt"
    ? { format, hash: await bcryptLookupHash(lookupId!), legacyHash: item.hash }
    : { format, hash: item.hash };
}

/** Pieces of a string that could be a key: the whole, and its words of key length. */
function keyCandidates(text: string): string[] {
  return [text, ...text.split(/[\s|,;]+/).filter((word) => word.length >= 16 && word !== text)];
}

/**
 * The field of an import item that holds the key whose hash it carries (a plaintext pasted into
 * `name`, `start`, metadata or a resource), or null. A bcrypt key's is any `<lookup id>.<secret>` in it
 * (bcrypt is too slow to try every word).
 */
async function fieldHoldingKey(
  item: ImportKeyInput,
  format: LegacyFormat,
  pepper: string | null,
): Promise<string | null> {
  const token =
    format === "bcrypt" ? new RegExp(`(?:^|[^A-Za-z0-9_-])${item.lookup_id}\\.[A-Za-z0-9_~+/=-]{16}`) : null;
  const digest = (text: string) => (format === "hmac-sha256" ? hmacSha256Hex(pepper ?? "", text) : sha256Hex(text));
  const pending = Object.entries(item)
    .filter(([field]) => field !== "hash" && field !== "lookup_id")
    .map(([field, value]): [unknown, string] => [value, field]);
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [value, path] = next;
    if (typeof value === "string") {
      if (token) {
        if (token.test(value)) return path;
        continue;
      }
      for (const candidate of keyCandidates(value)) if ((await digest(candidate)) === item.hash) return path;
    } else if (typeof value === "object" && value !== null) {
      for (const [key, inner] of Object.entries(value)) pending.push([inner, `${path}.${key}`]);
    }
  }
  return null;
}
