// npm run test:guards: the Python and PHP packages (packages/python, packages/php) against a real
// latchkey. Starts `npm start -- --port <port>` (LATCHKEY_GUARDS_PORT, default 8807) on fresh local
// state (.wrangler/test-guards, removed first), creates the keys the tests need through the API with
// a dev token, then runs `python3 -m unittest` for packages/python/tests and `phpunit` for
// packages/php/tests, passing the URL and the keys by environment (the PHP example server listens on
// LATCHKEY_GUARDS_PHP_PORT, default port + 1). Always stops the server. Prints each suite's own
// summary ("Ran N tests" / "OK", PHPUnit's "OK (N tests, ...)"), then one line per suite; exits 1 when
// either fails. Needs python3 with fastapi, flask and httpx, php-cli and phpunit (Debian's packages).
// LATCHKEY_GUARDS_URL=<url> runs the suites against a latchkey already running there instead.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { ensureDevVars, root, signDevToken } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.LATCHKEY_GUARDS_PORT ?? 8807);
const phpPort = Number(process.env.LATCHKEY_GUARDS_PHP_PORT ?? port + 1);
const external = process.env.LATCHKEY_GUARDS_URL;
const url = external ?? `http://127.0.0.1:${port}`;
const state = ".wrangler/test-guards";

ensureDevVars();
let server = null;
if (external === undefined) {
  rmSync(`${root}${state}`, { recursive: true, force: true });
  server = startDevServer(url, ["--port", String(port), "--ip", "127.0.0.1", "--persist-to", state]);
}

async function call(method, path, token, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const verify = async (key, checks = {}) =>
  (
    await fetch(`${url}/v1/verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key, ...checks }),
    }).then((response) => response.json())
  ).code;

/** The keys every suite shares, by environment variable. */
async function createKeys() {
  const owner = `guards-${process.pid}`;
  const token = await signDevToken(owner);
  const create = (body) => call("POST", "/v1/keys", token, body);
  const valid = await create({ name: "guards valid", scopes: ["models:invoke"] });
  const otherScope = await create({ name: "guards other scope", scopes: ["billing:read"] });
  const revoked = await create({ name: "guards revoked", scopes: ["models:invoke"] });
  // One request a day, spent here: every later verification is RATE_LIMITED for the whole run.
  const exhausted = await create({
    name: "guards exhausted",
    scopes: ["models:invoke"],
    ratelimits: [{ name: "per-day", limit: 1, duration_ms: 86_400_000 }],
  });
  const limited = await create({
    name: "guards limited",
    scopes: ["models:invoke"],
    ratelimits: [{ name: "per-day", limit: 10_000, duration_ms: 86_400_000 }],
  });
  await call("DELETE", `/v1/keys/${revoked.id}`, token);
  if ((await verify(exhausted.key, { scope: "models:invoke" })) !== "VALID")
    throw new Error("the exhausted key's one request was refused");
  for (let i = 0; (await verify(revoked.key)) !== "REVOKED"; i++) {
    if (i > 30) throw new Error("the revoked key still verifies after 15 s");
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return {
    LATCHKEY_URL: url,
    LATCHKEY_OWNER: owner,
    LATCHKEY_KEY: valid.key,
    LATCHKEY_KEY_ID: valid.id,
    LATCHKEY_KEY_OTHER_SCOPE: otherScope.key,
    LATCHKEY_KEY_REVOKED: revoked.key,
    LATCHKEY_KEY_EXHAUSTED: exhausted.key,
    LATCHKEY_KEY_LIMITED: limited.key,
    LATCHKEY_GUARDS_PHP_PORT: String(phpPort),
  };
}

/** The first python3 with the frameworks the tests drive (a pyenv shim may hide Debian's). */
function python() {
  const candidates = [process.env.LATCHKEY_PYTHON, "python3", "/usr/bin/python3"].filter(Boolean);
  const ready = candidates.find(
    (candidate) => spawnSync(candidate, ["-c", "import fastapi, flask, httpx"], { stdio: "ignore" }).status === 0,
  );
  return ready ?? candidates[0];
}

function suite(name, command, args, cwd, env) {
  console.log(`\n== ${name}: ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, stdio: "inherit" });
  if (result.error) console.error(`test:guards: ${result.error.message}`);
  return result.status === 0;
}

const outcomes = [];
try {
  await server?.ready();
  const env = await createKeys();
  outcomes.push([
    "python",
    suite(
      "python",
      python(),
      ["-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v"],
      `${root}packages/python`,
      env,
    ),
  ]);
  outcomes.push(["php", suite("php", "phpunit", ["--colors=never"], `${root}packages/php`, env)]);
} catch (error) {
  console.error(`test:guards: ${error.message}`);
  outcomes.push(["setup", false]);
} finally {
  server?.stop();
}
for (const [name, ok] of outcomes) console.log(`test:guards: ${name} ${ok ? "passed" : "FAILED"}`);
process.exit(outcomes.every(([, ok]) => ok) ? 0 : 1);
