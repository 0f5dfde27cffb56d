/**
 * Keys are stored only as the SHA-256 of the whole key. A key has 256 bits of entropy, so a fast
 * unsalted hash is safe here (no dictionary to attack) and lets the hot path find a key by an
 * indexed equality lookup. Pure apart from WebCrypto, which Workers and Node both provide.
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const encoder = new TextEncoder();

export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let out = "";
  for (const byte of digest) out += HEX[byte];
  return out;
}
