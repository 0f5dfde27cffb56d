// Local development settings shared by the npm scripts: the dev secret in .dev.vars (created on
// first use, git-ignored) and the [vars] of wrangler.toml.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("..", import.meta.url));
const devVarsPath = `${root}.dev.vars`;
const examplePath = `${root}.dev.vars.example`;

/**
 * The environment for a local `wrangler dev` of this checkout: wrangler's dev registry (where local
 * Workers find each other's service bindings) defaults to this checkout's .wrangler/registry instead
 * of the per-user one, so the servers of two clones never bind to each other. A registry the user
 * sets (WRANGLER_REGISTRY_PATH) is kept.
 */
export function devEnv(env = process.env) {
  return { ...env, WRANGLER_REGISTRY_PATH: env.WRANGLER_REGISTRY_PATH || `${root}.wrangler/registry` };
}

/** Creates .dev.vars from .dev.vars.example with a fresh random JWT_SECRET, unless it exists. */
export function ensureDevVars() {
  if (existsSync(devVarsPath)) {
    ensureWebhookDevVars();
    return false;
  }
  const secret = randomBytes(32).toString("base64url");
  const template = readFileSync(examplePath, "utf8");
  const filled = template
    .replace(/^JWT_SECRET=.*$/m, `JWT_SECRET=${secret}`)
    .replace(/^WEBHOOK_SECRET_KEY=.*$/m, `WEBHOOK_SECRET_KEY=${randomBytes(32).toString("base64url")}`);
  writeFileSync(devVarsPath, filled, { mode: 0o600 });
  return true;
}

/**
 * A .dev.vars made before webhooks existed gets their two local settings appended: a random
 * WEBHOOK_SECRET_KEY and WEBHOOK_ALLOW_LOOPBACK=true (http://127.0.0.1 endpoints, local only).
 */
function ensureWebhookDevVars() {
  const current = readFileSync(devVarsPath, "utf8");
  const missing = [];
  if (!/^WEBHOOK_SECRET_KEY=/m.test(current))
    missing.push(`WEBHOOK_SECRET_KEY=${randomBytes(32).toString("base64url")}`);
  if (!/^WEBHOOK_ALLOW_LOOPBACK=/m.test(current)) missing.push("WEBHOOK_ALLOW_LOOPBACK=true");
  if (missing.length > 0)
    writeFileSync(devVarsPath, `${current.replace(/\n?$/, "\n")}${missing.join("\n")}\n`, { mode: 0o600 });
}

function parseAssignments(text) {
  const out = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*"?([^"#]*?)"?\s*(?:#.*)?$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

export function devVars() {
  ensureDevVars();
  return parseAssignments(readFileSync(devVarsPath, "utf8"));
}

/**
 * The vars a wrangler.toml gives the Worker: the top level's [vars] (`env` null), or `[env.NAME]`'s, from
 * its inline `vars = { ... }` or its [env.NAME.vars] table (an environment inherits none). Flat string
 * values, which is all it holds; comment lines skipped.
 */
export function tomlVars(toml, env = null) {
  const vars = {};
  let table = "";
  for (const line of toml.split(/\r?\n/)) {
    if (/^\s*#/.test(line)) continue;
    const header = /^\s*\[\[?\s*([^\]]+?)\s*\]/.exec(line);
    if (header) {
      table = header[1];
      continue;
    }
    const inline = env !== null && table === `env.${env}` ? /^\s*vars\s*=\s*\{(.*)\}/.exec(line)?.[1] : undefined;
    if (inline !== undefined) {
      for (const m of inline.matchAll(/([A-Za-z0-9_]+)\s*=\s*"([^"]*)"/g)) vars[m[1]] = m[2];
    } else if (table === (env === null ? "vars" : `env.${env}.vars`)) {
      const m = /^\s*([A-Za-z0-9_]+)\s*=\s*"([^"]*)"/.exec(line);
      if (m) vars[m[1]] = m[2];
    }
  }
  return vars;
}

/** The [vars] table of this checkout's wrangler.toml. */
export function wranglerVars() {
  return tomlVars(readFileSync(`${root}wrangler.toml`, "utf8"));
}

/** wrangler.toml's `[dev] ip`, or null. */
export function wranglerDevIp() {
  const toml = readFileSync(`${root}wrangler.toml`, "utf8");
  const section = /^\[dev\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml);
  return (section && /^ip\s*=\s*"([^"]*)"/m.exec(section[1])?.[1]) ?? null;
}

/**
 * One `[env.<name>]` of wrangler.toml: its vars (the inline `vars = { ... }` table, flat strings) and
 * the names of its bindings (D1, KV, rate limiters, Analytics Engine), for the deploy-config test.
 */
export function wranglerEnv(name) {
  const toml = readFileSync(`${root}wrangler.toml`, "utf8");
  const section = new RegExp(`^\\[env\\.${name}\\]\\s*$([\\s\\S]*?)(?=^\\[(?!\\[)|(?![\\s\\S]))`, "m").exec(toml);
  if (!section) return null;
  return {
    vars: tomlVars(toml, name),
    bindings: [...section[1].matchAll(/\b(?:binding|name) = "([A-Z0-9_]+)"/g)].map((m) => m[1]),
    namespaceIds: [...section[1].matchAll(/namespace_id = "(\d+)"/g)].map((m) => m[1]),
    queues: {
      producers: queueNames(/producers = \[([^\]]*)\]/.exec(section[1])?.[1] ?? ""),
      consumers: queueNames(/consumers = \[([^\]]*)\]/.exec(section[1])?.[1] ?? ""),
    },
  };
}

const queueNames = (text) => [...text.matchAll(/\bqueue = "([^"]+)"/g)].map((m) => m[1]);

/** The queues a `[[queues.producers]]` or `[[queues.consumers]]` table of the top level names. */
function topLevelQueues(top, kind) {
  const tables = [
    ...top.matchAll(new RegExp(`^\\[\\[queues\\.${kind}\\]\\]\\s*$([\\s\\S]*?)(?=^\\[|(?![\\s\\S]))`, "gm")),
  ];
  return tables.flatMap((m) => queueNames(m[1]));
}

/** The top level's bindings and rate-limiter namespace ids, as `wranglerEnv` reads an environment's. */
export function wranglerTopLevel() {
  const toml = readFileSync(`${root}wrangler.toml`, "utf8");
  const top = toml.slice(0, toml.search(/^\[env\./m));
  return {
    bindings: [...top.matchAll(/^(?:binding|name) = "([A-Z0-9_]+)"/gm)].map((m) => m[1]),
    optional: [...top.matchAll(/^# (?:binding|name) = "([A-Z0-9_]+)"/gm)].map((m) => m[1]),
    namespaceIds: [...top.matchAll(/^namespace_id = "(\d+)"/gm)].map((m) => m[1]),
    queues: { producers: topLevelQueues(top, "producers"), consumers: topLevelQueues(top, "consumers") },
  };
}

/**
 * A JWT the local server accepts for `sub` (HS256 with the .dev.vars secret, wrangler.toml's iss/aud).
 * With `org`, `roles` go in the roles claim; without `roles`, the first admin role, so the token's
 * holder may manage that workspace's keys (WORKSPACE_ADMIN_ROLES empty: no roles needed, none put).
 * `operator` adds the first of OPERATOR_ROLES (default `operator`).
 */
export async function signDevToken(sub, { org, roles, operator = false, ttlSeconds = 3600 } = {}) {
  const { SignJWT } = await import("jose");
  const vars = { ...wranglerVars(), ...devVars() };
  if (!vars.JWT_SECRET) throw new Error("No JWT_SECRET in .dev.vars");
  const now = Math.floor(Date.now() / 1000);
  const adminRole = (vars.WORKSPACE_ADMIN_ROLES ?? "admin")
    .split(",")
    .map((role) => role.trim())
    .find(Boolean);
  const operatorRole = (vars.OPERATOR_ROLES ?? "operator")
    .split(",")
    .map((role) => role.trim())
    .find(Boolean);
  if (operator && !operatorRole) throw new Error("OPERATOR_ROLES is empty: nobody can be an operator");
  const claimed = [...(roles ?? (org && adminRole ? [adminRole] : [])), ...(operator ? [operatorRole] : [])];
  let jwt = new SignJWT({
    ...(org ? { [vars.JWT_ORG_CLAIM || "org_id"]: org } : {}),
    ...(claimed.length > 0 ? { [vars.JWT_ROLES_CLAIM || "roles"]: claimed } : {}),
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds);
  if (vars.JWT_ISSUER) jwt = jwt.setIssuer(vars.JWT_ISSUER);
  if (vars.JWT_AUDIENCE) jwt = jwt.setAudience(vars.JWT_AUDIENCE);
  return jwt.sign(new TextEncoder().encode(vars.JWT_SECRET));
}
