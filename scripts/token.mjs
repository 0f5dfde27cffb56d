// npm run token -- <sub> [--org <id>] [--ttl <seconds>]
// Prints an HS256 JWT that the local server accepts, for subject <sub>. A negative --ttl gives an
// already-expired token. Production uses JWT_JWKS_URL and your identity provider's tokens instead.
import { SignJWT } from "jose";
import { parseArgs } from "node:util";
import { devVars, wranglerVars } from "./dev-config.mjs";

const usage = "usage: npm run token -- <sub> [--org <id>] [--ttl <seconds>]";
let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { org: { type: "string" }, ttl: { type: "string", default: "3600" }, help: { type: "boolean" } },
  });
} catch (error) {
  console.error(`${error.message}\n${usage}`);
  process.exit(2);
}
const { values, positionals } = parsed;
const ttl = Number(values.ttl);
if (values.help || positionals.length !== 1 || !positionals[0] || !Number.isInteger(ttl)) {
  console.error(usage);
  process.exit(2);
}

const vars = { ...wranglerVars(), ...devVars() };
if (!vars.JWT_SECRET) {
  console.error("No JWT_SECRET in .dev.vars");
  process.exit(1);
}
const now = Math.floor(Date.now() / 1000);
let jwt = new SignJWT(values.org ? { [vars.JWT_ORG_CLAIM || "org_id"]: values.org } : {})
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(positionals[0])
  .setIssuedAt(now)
  .setExpirationTime(now + ttl);
if (vars.JWT_ISSUER) jwt = jwt.setIssuer(vars.JWT_ISSUER);
if (vars.JWT_AUDIENCE) jwt = jwt.setAudience(vars.JWT_AUDIENCE);
console.log(await jwt.sign(new TextEncoder().encode(vars.JWT_SECRET)));
