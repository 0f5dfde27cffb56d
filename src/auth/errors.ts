/** Why a caller could not be authenticated, as errors the HTTP layer and RPC translate. */
import type { ProblemCode } from "../problems";

/** Why authentication failed, as the problem code the client sees. */
export type AuthenticationFailure = Extract<
  ProblemCode,
  | "authentication_required"
  | "key_malformed"
  | "key_not_found"
  | "key_revoked"
  | "key_expired"
  | "key_disabled"
  | "key_ip_not_allowed"
  | "token_expired"
  | "token_invalid"
  | "token_required"
  | "verify_token_required"
  | "signature_invalid"
>;

/** Authentication failed: the caller is not who it claims (HTTP 401, RPC error). */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
  constructor(
    message: string,
    readonly code: AuthenticationFailure = "authentication_required",
  ) {
    super(message);
  }
}

/**
 * The identity provider's key set could not be fetched: the token was not judged, so this is not a
 * failed authentication (HTTP 503, not counted against the client).
 */
export class IdentityProviderUnavailableError extends Error {
  override readonly name = "IdentityProviderUnavailableError";
}

/**
 * The keys a signed report is checked against (GitHub's secret scanning keys) could not be fetched:
 * the report was not judged (HTTP 503, so its sender retries), and nothing was changed.
 */
export class SigningKeysUnavailableError extends Error {
  override readonly name = "SigningKeysUnavailableError";
}
