/**
 * Mints HS256 JWTs for local development: the keys page's dev sign-in (/ui/dev-token) and nothing
 * else. Refuses unless the configuration is in HS256 mode with DEV_UI_TOKENS on (config.ts), so a
 * deployment with an identity provider can never mint tokens.
 */
import { SignJWT } from "jose";
import type { Config } from "../config";

export const DEV_TOKEN_TTL_SECONDS = 3600;

export async function mintDevToken(config: Config, sub: string, orgId: string | null): Promise<string> {
  const { jwt, ui } = config;
  if (!ui.devTokens || !jwt.secret || jwt.jwksUrl) throw new Error("Dev tokens are not enabled");
  const now = Math.floor(Date.now() / 1000);
  let token = new SignJWT(orgId ? { [jwt.orgClaim]: orgId } : {})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + DEV_TOKEN_TTL_SECONDS);
  if (jwt.issuer) token = token.setIssuer(jwt.issuer);
  if (jwt.audience) token = token.setAudience(jwt.audience);
  return token.sign(jwt.secret);
}
