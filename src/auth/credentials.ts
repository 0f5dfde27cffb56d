/**
 * Reads the caller's credentials from the Authorization header and turns them into an Actor:
 * `Bearer <JWT>` for people, `Bearer <key>` or `Api-Key <key>` for machines. A bearer token that
 * starts with the key prefix is a key; anything else is treated as a JWT.
 */
import type { Config } from "../config";
import type { Actor } from "../model";
import type { VerifyCode } from "../schemas";
import type { Keys } from "../service/keys";
import { AuthenticationError } from "./errors";
import { MAX_TOKEN_LENGTH, verifyUserToken } from "./jwt";

type Credential = { readonly kind: "jwt"; readonly token: string } | { readonly kind: "key"; readonly key: string };

const KEY_FAILURES: Partial<Record<VerifyCode, string>> = {
  MALFORMED: "The API key is malformed",
  NOT_FOUND: "The API key is not valid",
  REVOKED: "The API key has been revoked",
  EXPIRED: "The API key has expired",
  DISABLED: "The API key is disabled",
  IP_NOT_ALLOWED: "The API key may not be used from this address",
};

function readCredential(authorization: string | null, config: Config): Credential {
  if (!authorization) throw new AuthenticationError("Authentication required");
  if (authorization.length > MAX_TOKEN_LENGTH + 16)
    throw new AuthenticationError("The Authorization header is too large");
  const space = authorization.indexOf(" ");
  const scheme = space === -1 ? authorization : authorization.slice(0, space);
  const value = space === -1 ? "" : authorization.slice(space + 1).trim();
  if (!value) throw new AuthenticationError("The Authorization header has no credentials");
  switch (scheme.toLowerCase()) {
    case "api-key":
      return { kind: "key", key: value };
    case "bearer":
      return value.startsWith(`${config.keyPrefix}_`) ? { kind: "key", key: value } : { kind: "jwt", token: value };
    default:
      throw new AuthenticationError("Use the Bearer or Api-Key authorization scheme");
  }
}

/** `ip`: the client's address, checked against a key's allow-list (absent: a key with one fails). */
export async function authenticate(
  authorization: string | null,
  config: Config,
  keys: Keys,
  ip?: string,
): Promise<Actor> {
  const credential = readCredential(authorization, config);
  if (credential.kind === "jwt") return verifyUserToken(credential.token, config.jwt);
  const { code, record } = await keys.verifier.verify(credential.key, { ip });
  if (code !== "VALID" || !record) {
    throw new AuthenticationError(KEY_FAILURES[code] ?? "The API key is not valid");
  }
  return { kind: "api_key", key: record };
}
