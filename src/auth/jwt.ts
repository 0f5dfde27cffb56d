/**
 * Authenticates people by JWT with jose. Production verifies against a JWKS URL (asymmetric
 * algorithms only); local development uses an HS256 secret. `exp` and `sub` are required, issuer and
 * audience are checked when configured (JWKS mode refuses to run without them unless told to accept
 * any: config.ts), and the algorithm allowlist never includes `none` nor HS256 when a JWKS is
 * configured (no key-confusion). Tokens over 8 KB are refused before parsing. A token issued in the
 * future, or living longer than JWT_MAX_AGE_SECONDS (which then requires `iat`), is refused, so a
 * leaked long-lived token is not a standing credential; subjects and org ids with control or
 * invisible format characters are refused, so no id can pass for another. The key set and how it
 * survives an outage of the identity provider: jwks.ts.
 */
import { type JWTPayload, type JWTVerifyGetKey, errors, jwtVerify } from "jose";
import type { JwtConfig } from "../config";
import type { Actor } from "../model";
import { WELL_FORMED_ID } from "../schemas";
import { AuthenticationError, IdentityProviderUnavailableError } from "./errors";
import { isKeySetFailure, keySetFor, keySetUnavailable } from "./jwks";

export const MAX_TOKEN_LENGTH = 8192;
const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

type UserActor = Extract<Actor, { kind: "user" }>;

/**
 * Verifies `token` and returns the person it names. `keySet` replaces the configured key source
 * (used to test JWKS mode with a local key set).
 */
export async function verifyUserToken(token: string, config: JwtConfig, keySet?: JWTVerifyGetKey): Promise<UserActor> {
  if (token.length > MAX_TOKEN_LENGTH) throw new AuthenticationError("The token is too large", "token_invalid");
  const source = keySet ?? (config.jwksUrl ? keySetFor(config.jwksUrl) : config.secret);
  if (!source) throw new AuthenticationError("Token authentication is not configured", "token_invalid");
  const algorithms = keySet || config.jwksUrl ? ASYMMETRIC_ALGORITHMS : ["HS256"];

  let payload: JWTPayload;
  try {
    const options = {
      algorithms,
      requiredClaims: ["exp", "sub"],
      clockTolerance: config.clockToleranceSeconds,
      ...(config.issuer ? { issuer: config.issuer } : {}),
      ...(config.audience ? { audience: config.audience } : {}),
    };
    ({ payload } =
      source instanceof Uint8Array ? await jwtVerify(token, source, options) : await jwtVerify(token, source, options));
  } catch (error) {
    if (error instanceof IdentityProviderUnavailableError) throw error;
    if (!keySet && config.jwksUrl && isKeySetFailure(error)) throw keySetUnavailable(error);
    throw new AuthenticationError(
      describe(error),
      error instanceof errors.JWTExpired ? "token_expired" : "token_invalid",
    );
  }

  checkLifetime(payload, config);
  const sub = payload.sub;
  if (!isWellFormedId(sub)) throw new AuthenticationError("The token's subject is missing or invalid", "token_invalid");
  // A workspace claim that is present but unusable refuses the token: quietly dropping it would turn
  // a lookalike org id into "no workspace" and hide the provider's mistake.
  const org = payload[config.orgClaim];
  if (org !== undefined && org !== null && !isWellFormedId(org)) {
    throw new AuthenticationError(`The token's ${config.orgClaim} claim is invalid`, "token_invalid");
  }
  const orgId = isWellFormedId(org) ? org : null;
  const roles = rolesOf(payload[config.rolesClaim]);
  const workspaceAdmin =
    orgId !== null && (config.adminRoles.length === 0 || roles.some((role) => config.adminRoles.includes(role)));
  // Unlike the admin roles, an empty OPERATOR_ROLES makes nobody an operator: the role reaches every owner.
  const operator = roles.some((role) => config.operatorRoles.includes(role));
  return { kind: "user", sub, orgId, roles, workspaceAdmin, operator };
}

function isWellFormedId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 255 && WELL_FORMED_ID.test(value);
}

/** `iat` not in the future (beyond the tolerance); with a cap, `iat` present and exp - iat within it. */
function checkLifetime(payload: JWTPayload, config: JwtConfig): void {
  const { iat, exp } = payload;
  if (iat !== undefined && iat > Date.now() / 1000 + config.clockToleranceSeconds) {
    throw new AuthenticationError("The token's iat claim is in the future", "token_invalid");
  }
  if (config.maxAgeSeconds === null) return;
  if (iat === undefined) throw new AuthenticationError("The token's iat claim is required", "token_invalid");
  if (exp !== undefined && exp - iat > config.maxAgeSeconds) {
    throw new AuthenticationError(
      `The token's lifetime (exp - iat) exceeds ${config.maxAgeSeconds} s`,
      "token_invalid",
    );
  }
}

/** The roles claim: a string is one role, an array its string members; anything else, no roles. */
function rolesOf(claim: unknown): string[] {
  if (typeof claim === "string") return [claim];
  return Array.isArray(claim) ? claim.filter((role): role is string => typeof role === "string") : [];
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "The token has expired";
  if (error instanceof errors.JWTClaimValidationFailed) return `The token's ${error.claim} claim is invalid`;
  if (error instanceof errors.JOSEAlgNotAllowed) return "The token's algorithm is not allowed";
  if (error instanceof errors.JWKSNoMatchingKey) return "No key matches the token";
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JOSENotSupported) {
    return "The token could not be verified";
  }
  return "The token is invalid";
}
