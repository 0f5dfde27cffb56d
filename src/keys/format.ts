/**
 * The API key format: `<prefix>_<body><checksum>`. The prefix may itself contain underscores
 * (`sk_live`): the body and checksum have fixed lengths, so a key's prefix is everything before them.
 *
 * - body: 32 bytes from `crypto.getRandomValues`, base62, always 43 characters (256 bits of entropy);
 * - checksum: CRC32 of everything before it, base62, always 6 characters.
 *
 * The checksum is GitHub's token idea: a mistyped, truncated or random string is rejected by pure
 * computation, before any storage is touched, and secret scanners can recognise real keys. CRC32 detects
 * every burst error of up to 32 bits, so every single-character change of a key is rejected.
 * Everything here is pure and synchronous.
 */

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE = 62n;
export const BODY_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
/** Characters of the body shown in `start` (about 36 of the body's 256 bits: useless to an attacker). */
const START_BODY_CHARS = 6;
/** Lowercase letters and digits, in parts joined by single underscores (`lk`, `sk_live`); at most 16. */
const PREFIX_PATTERN = /^(?=.{1,16}$)[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

const IS_BASE62 = new Uint8Array(128);
for (const c of ALPHABET) IS_BASE62[c.charCodeAt(0)] = 1;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32 (IEEE) of an ASCII string. Callers only pass strings already known to be ASCII. */
export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function base62(value: bigint, width: number): string {
  let out = "";
  while (value > 0n) {
    out = ALPHABET[Number(value % BASE)] + out;
    value /= BASE;
  }
  return out.padStart(width, "0");
}

/** Six base62 characters of the CRC32 (in plain numbers: it runs on every verification). */
function checksum(text: string): string {
  let value = crc32(text);
  let out = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export function isValidPrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix);
}

/** A new key with `prefix`. The caller is responsible for never storing or logging the result. */
export function generateKey(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  const head = `${prefix}_${base62(value, BODY_LENGTH)}`;
  return head + checksum(head);
}

function keyLength(prefix: string): number {
  return prefix.length + 1 + BODY_LENGTH + CHECKSUM_LENGTH;
}

/**
 * True when `candidate` has the shape of a key with `prefix` and its checksum matches.
 * Runs in a few hundred nanoseconds and never touches storage.
 */
export function isWellFormedKey(candidate: string, prefix: string): boolean {
  if (candidate.length !== keyLength(prefix)) return false;
  if (!candidate.startsWith(prefix) || candidate.charCodeAt(prefix.length) !== 95 /* _ */) return false;
  for (let i = prefix.length + 1; i < candidate.length; i++) {
    const code = candidate.charCodeAt(i);
    if (code >= 128 || IS_BASE62[code] === 0) return false;
  }
  const split = candidate.length - CHECKSUM_LENGTH;
  return checksum(candidate.slice(0, split)) === candidate.slice(split);
}

/** True when `candidate` is a well-formed key with any of `prefixes` (the newest first). */
export function isWellFormedKeyOf(candidate: string, prefixes: readonly string[]): boolean {
  for (const prefix of prefixes) if (isWellFormedKey(candidate, prefix)) return true;
  return false;
}

/**
 * The regular expression a secret scanner registers for keys with `prefix` (docs/leaks.md): the
 * prefix, `_`, then exactly the body's and checksum's base62 characters, between word boundaries. The
 * checksum is what rules out a chance match; the pattern only finds candidates.
 */
export function scannerPattern(prefix: string): string {
  return `\\b${prefix}_[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}\\b`;
}

/** The displayable beginning of a key, e.g. `lk_3fZq9a`: enough for a person to tell keys apart. */
export function keyStart(key: string, prefix: string): string {
  return key.slice(0, prefix.length + 1 + START_BODY_CHARS);
}
