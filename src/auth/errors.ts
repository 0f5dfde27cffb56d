/** Authentication failed: the caller is not who it claims (HTTP 401, RPC error). */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
}
