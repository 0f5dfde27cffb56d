/**
 * Reads the caller's credentials from the Authorization header and turns them into an Actor:
 * `Bearer <JWT>` for people, `Bearer <key>` or `Api-Key <key>` for machines. A bearer token that
 * starts with an accepted key prefix (KEY_PREFIX or ACCEPTED_PREFIXES) is a key; anything else is
 * treated as a JWT.
 */
import type { Config } from "../config";
import type { Actor } from "../model";
import type { VerifyCode } from "../schemas";
import type { Keys } from "../service/keys";
import { type AuthenticationFailure, AuthenticationError } from "./errors";
import { MAX_TOKEN_LENGTH, verifyUserToken } from "./jwt";

type Credential = { readonly kind: "jwt"; readonly token: string } | { readonly kind: "key"; readonly key: string };

const KEY_FAILURES: Partial<Record<VerifyCode, [string, AuthenticationFailure]>> = {
  MALFORMED: ["The API key is malformed", "key_malformed"],
  NOT_FOUND: ["The API key is not valid", "key_not_found"],
  REVOKED: ["The API key has been revoked", "key_revoked"],
  EXPIRED: ["The API key has expired", "key_expired"],
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
      return config.acceptedPrefixes.some((prefix) => value.startsWith(`${prefix}_`))
        ? { kind: "key", key: value }
        : { kind: "jwt", token: value };
    default:
      throw new AuthenticationError("Use the Bearer or Api-Key authorization scheme");
  }
}

export async function authenticate(authorization: string | null, config: Config, keys: Keys): Promise<Actor> {
  const credential = readCredential(authorization, config);
  if (credential.kind === "jwt") return verifyUserToken(credential.token, config.jwt);
  const { code, record } = await keys.verifier.verify(credential.key);
  if (code !== "VALID" || !record) {
    const [message, failure] = KEY_FAILURES[code] ?? ["The API key is not valid", "key_not_found"];
    throw new AuthenticationError(message, failure);
  }
  return { kind: "api_key", key: record };
}
