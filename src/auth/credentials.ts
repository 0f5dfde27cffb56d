/**
 * Reads the caller's credentials from the Authorization header and turns them into an Actor:
 * `Bearer <JWT>` for people, `Bearer <key>` or `Api-Key <key>` for machines. A bearer token that
 * starts with an accepted key prefix (KEY_PREFIX or ACCEPTED_PREFIXES), or is in another accepted key
 * form (keys/legacy.ts: never a JWT's, which has dots), is a key; anything else is treated as a JWT.
 */
import type { Config, VerifyAccess } from "../config";
import { alternateCredential } from "../keys/legacy";
import type { Actor } from "../model";
import type { VerifyCode } from "../schemas";
import { UsageLimitedError } from "../service/errors";
import type { Keys } from "../service/keys";
import type { RootKeys, RootVerification } from "../service/root-keys";
import { type AuthenticationFailure, AuthenticationError } from "./errors";
import { MAX_TOKEN_LENGTH, verifyUserToken } from "./jwt";

type Credential =
  | { readonly kind: "jwt"; readonly token: string }
  | { readonly kind: "key"; readonly key: string }
  | { readonly kind: "root"; readonly key: string };

const KEY_FAILURES: Partial<Record<VerifyCode, [string, AuthenticationFailure]>> = {
  MALFORMED: ["The API key is malformed", "key_malformed"],
  NOT_FOUND: ["The API key is not valid", "key_not_found"],
  REVOKED: ["The API key has been revoked", "key_revoked"],
  EXPIRED: ["The API key has expired", "key_expired"],
  DISABLED: ["The API key is disabled", "key_disabled"],
  IP_NOT_ALLOWED: ["The API key may not be used from this address", "key_ip_not_allowed"],
};

const ROOT_FAILURES: Record<Exclude<RootVerification["code"], "VALID">, [string, AuthenticationFailure]> = {
  MALFORMED: ["The root key is malformed", "key_malformed"],
  NOT_FOUND: ["The root key is not valid", "key_not_found"],
  REVOKED: ["The root key has been revoked", "key_revoked"],
  EXPIRED: ["The root key has expired", "key_expired"],
  IP_NOT_ALLOWED: ["The root key may not be used from this address", "key_ip_not_allowed"],
};

function readCredential(authorization: string | null, config: Config): Credential {
  if (!authorization) throw new AuthenticationError("Authentication required");
  if (authorization.length > MAX_TOKEN_LENGTH + 16)
    throw new AuthenticationError("The Authorization header is too large");
  const space = authorization.indexOf(" ");
  const scheme = space === -1 ? authorization : authorization.slice(0, space);
  const value = space === -1 ? "" : authorization.slice(space + 1).trim();
  if (!value) throw new AuthenticationError("The Authorization header has no credentials");
  // A root key's prefix (`lk_root`) may extend a product key's (`lk`): it is told apart first. (A JWT
  // never starts with a prefix and an underscore: it starts with its base64url header.)
  const lowered = scheme.toLowerCase();
  if ((lowered === "bearer" || lowered === "api-key") && isRootShaped(value, config))
    return { kind: "root", key: value };
  switch (scheme.toLowerCase()) {
    case "api-key":
      return { kind: "key", key: value };
    case "bearer":
      return config.acceptedPrefixes.some((prefix) => value.startsWith(`${prefix}_`)) ||
        alternateCredential(value, config.acceptedPrefixes, config.legacyFormats) !== null
        ? { kind: "key", key: value }
        : { kind: "jwt", token: value };
    default:
      throw new AuthenticationError("Use the Bearer or Api-Key authorization scheme");
  }
}

function isRootShaped(value: string, config: Config): boolean {
  return config.rootKeyPrefix !== null && value.startsWith(`${config.rootKeyPrefix}_`);
}

/**
 * The caller, from the Authorization header. `ip`: the client's address, checked against a key's
 * allow-list (absent: a key with one fails). `fromMemoryOnly` (a client over its failure limit): a
 * key is judged from the isolate's memory alone, and one that would need a storage lookup fails.
 */
export async function authenticate(
  authorization: string | null,
  config: Config,
  keys: Keys,
  {
    ip,
    fromMemoryOnly = false,
    rootKeys,
  }: { readonly ip?: string; readonly fromMemoryOnly?: boolean; readonly rootKeys?: RootKeys } = {},
): Promise<Actor> {
  const credential = readCredential(authorization, config);
  if (credential.kind === "jwt") return verifyUserToken(credential.token, config.jwt);
  if (credential.kind === "root") return authenticateRoot(credential.key, rootKeys, { ip, fromMemoryOnly });
  // From memory, only a key memory holds can pass, and every failure is the same 429 (http/limits.ts).
  const verification = fromMemoryOnly
    ? await keys.verifier.fromMemory(credential.key, { ip }, true)
    : await keys.verifier.verify(credential.key, { ip });
  if (!verification) throw new AuthenticationError("The API key could not be checked now");
  const { code, record, usage } = verification;
  // Over its own limits, the key is still authentic: 429, never 401, and not an authentication failure.
  if (usage && code !== "VALID") throw new UsageLimitedError(usage);
  if (code !== "VALID" || !record) {
    const [message, failure] = KEY_FAILURES[code] ?? ["The API key is not valid", "key_not_found"];
    throw new AuthenticationError(message, failure);
  }
  return { kind: "api_key", key: record, ip };
}

/**
 * A root key, read from D1 on every request (service/root-keys.ts): refused like a key that fails
 * (401), and, for a client over its failure limit, refused without a lookup (it would need storage).
 */
async function authenticateRoot(
  key: string,
  rootKeys: RootKeys | undefined,
  { ip, fromMemoryOnly }: { readonly ip: string | undefined; readonly fromMemoryOnly: boolean },
): Promise<Actor> {
  if (!rootKeys || fromMemoryOnly) throw new AuthenticationError("The root key could not be checked now");
  const verification = await rootKeys.verify(key, ip);
  if (verification.code === "VALID") return { kind: "root", root: verification.root };
  throw new AuthenticationError(...ROOT_FAILURES[verification.code]);
}

/**
 * POST /v1/verify's service credential. Open: anyone. With VERIFY_TOKEN: `Authorization: Bearer
 * <VERIFY_TOKEN>`, compared in constant time (as SHA-256 digests, so not even the length leaks).
 */
export async function authenticateVerifyCaller(authorization: string | null, access: VerifyAccess): Promise<void> {
  if (access.kind === "open") return;
  const space = authorization?.indexOf(" ") ?? -1;
  const scheme = authorization?.slice(0, space).toLowerCase();
  const presented = space === -1 ? "" : (authorization?.slice(space + 1).trim() ?? "");
  if (access.kind === "token" && scheme === "bearer" && (await sameSecret(presented, access.token))) return;
  throw new AuthenticationError(
    "POST /v1/verify requires the service credential: Authorization: Bearer <VERIFY_TOKEN>",
    "verify_token_required",
  );
}

async function sameSecret(presented: string, expected: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(presented)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/** For routes a person must call (a JWT): an API key is refused before it is looked up. */
export async function authenticatePerson(authorization: string | null, config: Config): Promise<Actor> {
  const credential = readCredential(authorization, config);
  if (credential.kind !== "jwt")
    throw new AuthenticationError("This endpoint requires a JWT; API keys are not accepted", "token_required");
  return verifyUserToken(credential.token, config.jwt);
}
