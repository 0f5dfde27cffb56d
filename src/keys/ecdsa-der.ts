/**
 * ECDSA signatures as others send them (DER: `SEQUENCE { INTEGER r, INTEGER s }`, RFC 3279) turned
 * into what WebCrypto verifies (IEEE P1363: r and s as fixed-width big-endian halves, `r || s`).
 * GitHub signs its secret scanning reports with P-256 in DER, so each integer is at most 32 bytes
 * once its sign byte is gone. Pure; a malformed signature gives null, never a throw.
 */

/** Base64 (standard alphabet, padding optional) to bytes, or null when it is not base64. */
export function base64Bytes(text: string): Uint8Array | null {
  const clean = text.trim();
  if (clean.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(clean)) return null;
  let binary: string;
  try {
    binary = atob(clean);
  } catch {
    return null;
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** One DER length at `at`: its value and where the content starts, or null (short and long forms up to 2 bytes). */
function readLength(der: Uint8Array, at: number): { length: number; next: number } | null {
  const first = der[at];
  if (first === undefined) return null;
  if (first < 0x80) return { length: first, next: at + 1 };
  const count = first & 0x7f;
  if (count === 0 || count > 2 || at + 1 + count > der.length) return null;
  let length = 0;
  for (let i = 0; i < count; i++) length = (length << 8) | der[at + 1 + i]!;
  // DER: the long form only for lengths of 128 and more.
  if (length < 0x80) return null;
  return { length, next: at + 1 + count };
}

/**
 * One positive INTEGER at `at` written into `out` at `offset` as `size` big-endian bytes (left-padded
 * with zeros), or null when it is not a positive integer of at most `size` bytes. Returns where the
 * next element starts.
 */
function readInteger(der: Uint8Array, at: number, out: Uint8Array, offset: number, size: number): number | null {
  if (der[at] !== 0x02) return null;
  const header = readLength(der, at + 1);
  if (!header || header.length === 0) return null;
  const end = header.next + header.length;
  if (end > der.length) return null;
  let start = header.next;
  // Negative: not a signature's r or s.
  if (der[start]! & 0x80) return null;
  // The sign byte DER adds when the top bit is set, and any other leading zeros.
  while (start < end - 1 && der[start] === 0) start++;
  const length = end - start;
  if (length > size) return null;
  out.set(der.subarray(start, end), offset + size - length);
  return end;
}

/**
 * The raw `r || s` form (2 × `size` bytes; 32 for P-256) of a DER ECDSA signature, or null when the
 * bytes are not exactly one such signature (wrong tags, lengths, trailing bytes, a value too wide).
 */
export function derToRawSignature(der: Uint8Array, size = 32): Uint8Array | null {
  if (der[0] !== 0x30) return null;
  const sequence = readLength(der, 1);
  if (!sequence || sequence.next + sequence.length !== der.length) return null;
  const raw = new Uint8Array(2 * size);
  const afterR = readInteger(der, sequence.next, raw, 0, size);
  if (afterR === null) return null;
  const afterS = readInteger(der, afterR, raw, size, size);
  if (afterS !== der.length) return null;
  return raw;
}
