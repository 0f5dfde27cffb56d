// npm run token -- <sub> [--org <id>] [--role <name>]... [--operator] [--ttl <seconds>]
// Prints an HS256 JWT that the local server accepts, for subject <sub>. With --org, the token makes
// <sub> an admin of that workspace (the first of WORKSPACE_ADMIN_ROLES) unless --role names the roles
// instead (repeatable; e.g. --role member for one who may only list). A negative --ttl gives an
// already-expired token. --operator adds the first of OPERATOR_ROLES: an operator manages root keys. Production uses JWT_JWKS_URL and your identity provider's tokens instead.
import { parseArgs } from "node:util";
import { signDevToken } from "./dev-config.mjs";

const usage = "usage: npm run token -- <sub> [--org <id>] [--role <name>]... [--operator] [--ttl <seconds>]";
let parsed;
try {
  // `--ttl -60` (an expired token) is one option with a negative value, not two options.
  const args = process.argv
    .slice(2)
    .flatMap((arg, i, all) =>
      all[i - 1] === "--ttl" ? [] : arg === "--ttl" && i + 1 < all.length ? [`--ttl=${all[i + 1]}`] : [arg],
    );
  parsed = parseArgs({
    args,
    allowPositionals: true,
    options: {
      org: { type: "string" },
      role: { type: "string", multiple: true },
      operator: { type: "boolean" },
      ttl: { type: "string", default: "3600" },
      help: { type: "boolean" },
    },
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

try {
  // The server tolerates 30 s of clock skew: an expired token must be expired beyond it.
  const ttlSeconds = ttl < 0 ? ttl - 60 : ttl;
  console.log(
    await signDevToken(positionals[0], { org: values.org, roles: values.role, operator: values.operator, ttlSeconds }),
  );
} catch (error) {
  console.error(error.message);
  process.exit(1);
}
