/** Authentication failed: the caller is not who it claims (HTTP 401, RPC error). */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
}

/**
 * The identity provider's key set could not be fetched: the token was not judged, so this is not a
 * failed authentication (HTTP 503, not counted against the client).
 */
export class IdentityProviderUnavailableError extends Error {
  override readonly name = "IdentityProviderUnavailableError";
}
