/**
 * Signing secrets at rest: the service must sign with them, so they cannot be hashed like keys; they
 * are encrypted with AES-256-GCM under a key derived (SHA-256) from WEBHOOK_SECRET_KEY, a deployment
 * secret, with the endpoint's id as associated data (a ciphertext copied to another row does not
 * decrypt). Stored as `v1.<iv>.<ciphertext>` (base64url). A database dump alone reveals no secret.
 */
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function b64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function keyFor(secretKey: string): Promise<CryptoKey> {
  let key = keys.get(secretKey);
  if (!key) {
    key = crypto.subtle
      .digest("SHA-256", encoder.encode(`latchkey webhook secrets\n${secretKey}`))
      .then((raw) => crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]));
    keys.set(secretKey, key);
  }
  return key;
}

export async function encryptSecret(secretKey: string, endpointId: string, secret: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(endpointId) },
    await keyFor(secretKey),
    encoder.encode(secret),
  );
  return `v1.${b64(iv)}.${b64(new Uint8Array(sealed))}`;
}

/** The secret, or throws when the ciphertext is not this key's for this endpoint. */
export async function decryptSecret(secretKey: string, endpointId: string, stored: string): Promise<string> {
  const [version, iv, sealed] = stored.split(".");
  if (version !== "v1" || !iv || !sealed) throw new Error("unreadable webhook secret");
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: unb64(iv), additionalData: encoder.encode(endpointId) },
    await keyFor(secretKey),
    unb64(sealed),
  );
  return new TextDecoder().decode(plain);
}
