// npm run smoke:dialects [-- --port 8803]: starts latchkey as `npm start` does (fresh local state),
// runs each vendor page's example request as the page prints it — the curl commands through the real
// curl binary (Baseten's with `--data` and no Content-Type, so curl sends
// application/x-www-form-urlencoded), the FastAPI page's fetch through Node's fetch — with only the
// host and the credentials replaced, checks each answer, and stops the server. Exits 1 on any failure.
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { startServer } from "../bench/server.mjs";
import { signDevToken } from "./dev-config.mjs";

const { values: opts } = parseArgs({ options: { port: { type: "string", default: "8803" } } });
const PAGE_HOSTS = /https:\/\/(?:api\.baseten\.co|app\.autocalls\.ai|example\.com|api\.tryreplicas\.com)/g;

/**
 * The pages' commands. The FastAPI page's text lost its line breaks (`\ --url` on one line); they are
 * restored here. The Replicas page shows no command, only its OpenAPI operation: the request below
 * is that operation's (Bearer JWT, JSON body with the required `name`).
 */
const CURLS = {
  replicas: `curl -X POST https://api.tryreplicas.com/v1/user/api-keys \\
  -H "Authorization: Bearer $JWT" \\
  -H "Content-Type: application/json" \\
  -d '{"name": "My laptop"}'`,
  fastapi: `curl --request POST \\
 --url https://example.com/api/auth/api-keys/ \\
 --header 'Authorization: Bearer <token>' \\
 --header 'Content-Type: application/json' \\
 --data '{ "name": "example" }'`,
  autocalls: `curl -X POST https://app.autocalls.ai/api/user/api-keys \\
  -H "Authorization: Bearer YOUR_EXISTING_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{
    "name": "Production API Key"
  }'`,
  baseten: `curl --request POST \\
--url https://api.baseten.co/v1/api_keys \\
--header "Authorization: Api-Key $BASETEN_API_KEY" \\
--data '{
  "name": "my-api-key",
  "type": "PERSONAL"
}'`,
};

const failures = [];
function check(what, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: ${detail}`}`);
  if (!ok) failures.push(what);
}

/** Runs a page's command with bash and the real curl; only output options are added (status on the last line). */
function runCurl(command, base, env, substitutions = {}) {
  let text = command.replace(PAGE_HOSTS, base);
  for (const [placeholder, value] of Object.entries(substitutions)) text = text.replaceAll(placeholder, value);
  const out = execFileSync("bash", ["-c", `${text} --silent --show-error --write-out '\\n%{http_code}'`], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  const lines = out.trimEnd().split("\n");
  const status = Number(lines.pop());
  let body = null;
  try {
    body = JSON.parse(lines.join("\n"));
  } catch {
    body = lines.join("\n");
  }
  return { status, body };
}

const server = await startServer({ port: Number(opts.port), state: ".wrangler/smoke" });
try {
  const base = server.base;
  const jwt = await signDevToken("smoke-user", { org: "smoke-org" });
  const created = await fetch(`${base}/v1/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "smoke" }),
  }).then((r) => r.json());
  const key = created.key;
  const whoami = (credential) =>
    fetch(`${base}/v1/whoami`, { headers: { Authorization: `Bearer ${credential}` } }).then((r) => r.status);

  const replicas = runCurl(CURLS.replicas, base, { JWT: jwt });
  check(
    "replicas curl: 201 { id, name, key, created_at }",
    replicas.status === 201 && typeof replicas.body.key === "string",
    JSON.stringify(replicas),
  );
  const replicasWithKey = runCurl(CURLS.replicas, base, { JWT: key });
  check(
    "replicas curl with an API key: 401 { error, details }",
    replicasWithKey.status === 401 && "error" in replicasWithKey.body,
    JSON.stringify(replicasWithKey),
  );

  for (const [who, credential] of [
    ["JWT", jwt],
    ["API key", key],
  ]) {
    const fastapi = runCurl(CURLS.fastapi, base, {}, { "<token>": credential });
    const fields = Object.keys(fastapi.body ?? {})
      .sort()
      .join(",");
    check(
      `fastapi curl (${who}): 201 { id, key, name, created_at }`,
      fastapi.status === 201 && fields === "created_at,id,key,name",
      JSON.stringify(fastapi),
    );
  }
  // The page's fetch snippet, as printed (url and token replaced).
  {
    const url = `${base}/api/auth/api-keys/`;
    const options = {
      method: "POST",
      headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
      body: '{"name":"example"}',
    };
    const response = await fetch(url, options);
    const data = await response.json();
    check(
      "fastapi fetch: 201 with the key",
      response.status === 201 && (await whoami(data.key)) === 200,
      JSON.stringify(data),
    );
  }

  const autocalls = runCurl(CURLS.autocalls, base, {}, { YOUR_EXISTING_API_KEY: key });
  const token = autocalls.body?.api_key?.token ?? "";
  check(
    "autocalls curl: 201 API key created successfully.",
    autocalls.status === 201 && autocalls.body.message === "API key created successfully.",
    JSON.stringify(autocalls),
  );
  check(
    "autocalls token <id>|<key> works as a Bearer credential",
    /^[0-9a-f-]{36}\|/.test(token) && (await whoami(token)) === 200,
    token.split("|")[0],
  );
  check("autocalls bare key works as a Bearer credential", (await whoami(token.split("|")[1] ?? "")) === 200);

  const baseten = runCurl(CURLS.baseten, base, { BASETEN_API_KEY: key });
  check(
    "baseten curl (--data, no Content-Type): 200 { api_key }",
    baseten.status === 200 && (await whoami(baseten.body.api_key)) === 200,
    JSON.stringify(baseten),
  );
} finally {
  await server.stop();
}
if (failures.length > 0) {
  console.error(`${failures.length} dialect check(s) failed`);
  process.exit(1);
}
console.log("Every page's example request succeeded.");
