/**
 * The signature on a GitHub secret scanning report (docs/leaks.md): GitHub signs the exact bytes of
 * each request's body with ECDSA P-256 / SHA-256 and names its key in `Github-Public-Key-Identifier`;
 * the DER signature, base64, is in `Github-Public-Key-Signature`. The public keys are published at
 * GITHUB_SECRET_SCANNING_KEYS_URL as `{ public_keys: [{ key_identifier, key (PEM), is_current }] }`.
 *
 * Keys are kept per isolate, by URL and identifier. An identifier not held makes one fetch of the
 * list, at most once per REFETCH_COOLDOWN_MS per isolate (and one at a time), so a stream of
 * made-up identifiers cannot make every request fetch: within the cooldown it is refused at once. A
 * list older than MAX_AGE_MS is fetched again when next needed; if GitHub cannot be reached then, the
 * keys already held keep working. Without any key for the identifier and with GitHub unreachable, the
 * report is answered 503 (GitHub retries), never accepted.
 */
import { base64Bytes, derToRawSignature } from "../keys/ecdsa-der";
import { describeError, log } from "../log";
import { AuthenticationError, SigningKeysUnavailableError } from "./errors";

const FETCH_TIMEOUT_MS = 3_000;
/** An unknown identifier fetches the list at most this often per isolate. */
export const REFETCH_COOLDOWN_MS = 60_000;
/** A list this old is fetched again when next used (GitHub rotates its keys rarely). */
const MAX_AGE_MS = 6 * 3_600_000;

interface KeyList {
  keys: Map<string, CryptoKey>;
  /** When the last successful fetch was made (0: never). */
  fetchedAt: number;
  /** When the last fetch was started, and whether it failed. */
  attemptedAt: number;
  failed: boolean;
  pending: Promise<void> | null;
}

const lists = new Map<string, KeyList>();

const refused = (reason: string) => new AuthenticationError(reason, "signature_invalid");

/** The key's SPKI bytes from a PEM `PUBLIC KEY` block, or null. */
function pemBytes(pem: string): Uint8Array | null {
  const match = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/.exec(pem);
  return match ? base64Bytes(match[1]!.replace(/\s+/g, "")) : null;
}

async function importKey(pem: string): Promise<CryptoKey | null> {
  const spki = pemBytes(pem);
  if (!spki) return null;
  try {
    return await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  } catch {
    return null;
  }
}

/** Fetches the list into `list` (replacing its keys only on success). */
async function refresh(url: URL, list: KeyList, now: number): Promise<void> {
  list.attemptedAt = now;
  try {
    const response = await fetch(url, {
      headers: { Accept: "application/json", "User-Agent": "latchkey" },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = (await response.json()) as { public_keys?: unknown };
    if (!Array.isArray(body.public_keys)) throw new Error("no public_keys array");
    const keys = new Map<string, CryptoKey>();
    for (const entry of body.public_keys as { key_identifier?: unknown; key?: unknown }[]) {
      if (typeof entry?.key_identifier !== "string" || typeof entry.key !== "string") continue;
      const key = await importKey(entry.key);
      if (key) keys.set(entry.key_identifier, key);
    }
    list.keys = keys;
    list.fetchedAt = now;
    list.failed = false;
  } catch (error) {
    list.failed = true;
    log("warn", "github_keys_fetch_failed", { url: url.href, error: describeError(error) });
  }
}

/** One fetch at a time per list: concurrent callers share it. */
function refreshOnce(url: URL, list: KeyList, now: number): Promise<void> {
  list.pending ??= refresh(url, list, now).finally(() => {
    list.pending = null;
  });
  return list.pending;
}

/** The key GitHub names `identifier`, fetching the list when needed and allowed. */
async function keyFor(url: URL, identifier: string, now: number): Promise<CryptoKey> {
  let list = lists.get(url.href);
  if (!list) {
    list = { keys: new Map(), fetchedAt: 0, attemptedAt: 0, failed: false, pending: null };
    lists.set(url.href, list);
  }
  const held = list.keys.get(identifier);
  const coolingDown = list.attemptedAt !== 0 && now - list.attemptedAt < REFETCH_COOLDOWN_MS;
  if (held && now - list.fetchedAt < MAX_AGE_MS) return held;
  if (list.pending) await list.pending;
  else if (!coolingDown) await refreshOnce(url, list, now);
  const key = list.keys.get(identifier) ?? held;
  if (key) return key;
  if (list.failed) throw new SigningKeysUnavailableError("GitHub's secret scanning keys could not be fetched");
  throw refused("The report is signed with a key GitHub does not publish");
}

/**
 * Resolves when `body` carries a valid signature by a key published at `url`; otherwise throws
 * AuthenticationError (`signature_invalid`: no, malformed or wrong signature, unknown key) or
 * SigningKeysUnavailableError (the keys could not be fetched).
 */
export async function verifyGithubSignature(
  url: URL,
  identifier: string | null,
  signature: string | null,
  body: Uint8Array,
  now: number = Date.now(),
): Promise<void> {
  if (!identifier || !signature) {
    throw refused("The report must carry Github-Public-Key-Identifier and Github-Public-Key-Signature");
  }
  const der = base64Bytes(signature);
  const raw = der && derToRawSignature(der);
  if (!raw) throw refused("Github-Public-Key-Signature is not a base64 DER ECDSA signature");
  const key = await keyFor(url, identifier, now);
  const valid = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, raw, body);
  if (!valid) throw refused("The report's signature does not match its body");
}
