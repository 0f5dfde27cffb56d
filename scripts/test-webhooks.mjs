// npm run test:webhooks: webhooks end to end against `npm start`, as a person would try them. Starts
// latchkey on fresh local state (LATCHKEY_WEBHOOKS_PORT, default 8817) and a receiver on
// 127.0.0.1 (port + 1); registers the receiver (npm start allows http://127.0.0.1), creates, rotates
// and revokes a key, and checks that each event arrives, signed, through the local queue; that
// another person's endpoint receives none of them; and that docs/webhooks.md's Node, Python and PHP
// snippets, run as printed, verify what arrived (Python and PHP when installed). Always stops the server.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ensureDevVars, root, signDevToken } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.LATCHKEY_WEBHOOKS_PORT ?? 8817);
const receiverPort = port + 1;
const url = `http://127.0.0.1:${port}`;
const state = ".wrangler/test-webhooks";
const WAIT_MS = 60_000;

ensureDevVars();
rmSync(`${root}${state}`, { recursive: true, force: true });
const server = startDevServer(url, [
  "--port",
  String(port),
  "--ip",
  "127.0.0.1",
  "--inspector-port",
  String(port + 2),
  "--persist-to",
  state,
]);

/** Every request the receiver got: path, headers, raw body, when. */
const received = [];
const receiver = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    received.push({
      path: request.url,
      headers: request.headers,
      body: Buffer.concat(chunks).toString("utf8"),
      at: Date.now(),
    });
    response.writeHead(204).end();
  });
});

async function call(method, path, token, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function expectStatus(promise, status, what) {
  const result = await promise;
  if (result.status !== status)
    throw new Error(`${what}: expected ${status}, got ${result.status} ${JSON.stringify(result.body)}`);
  return result.body;
}

/** The fenced code block of `language` after the line `**<title>**` in docs/webhooks.md. */
function snippet(title, language) {
  const page = readFileSync(`${root}docs/webhooks.md`, "utf8");
  const match = new RegExp(`\\*\\*${title}\\*\\*\\n\\n\`\`\`${language}\\n([\\s\\S]*?)\\n\`\`\``).exec(page);
  if (!match) throw new Error(`docs/webhooks.md has no ${title} snippet`);
  return match[1];
}

const have = (command, args) => spawnSync(command, args, { stdio: "ignore" }).status === 0;

async function waitFor(predicate, what) {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(
    `timed out waiting for ${what}; received ${JSON.stringify(received.map((r) => [r.path, JSON.parse(r.body).type]))}`,
  );
}

async function main() {
  await new Promise((resolve) => receiver.listen(receiverPort, "127.0.0.1", resolve));
  await server.ready();
  const alice = await signDevToken("webhooks-alice");
  const bob = await signDevToken("webhooks-bob");

  await expectStatus(call("POST", "/v1/webhooks", alice, { url: "http://10.0.0.1/hook" }), 422, "a private address");
  const hook = await expectStatus(
    call("POST", "/v1/webhooks", alice, { url: `http://127.0.0.1:${receiverPort}/alice` }),
    201,
    "register alice's endpoint",
  );
  await expectStatus(
    call("POST", "/v1/webhooks", bob, { url: `http://127.0.0.1:${receiverPort}/bob` }),
    201,
    "register bob's",
  );
  if (!hook.secret.startsWith("whsec_")) throw new Error("no whsec_ secret");

  const started = Date.now();
  const key = await expectStatus(call("POST", "/v1/keys", alice, { name: "webhooks e2e" }), 201, "create");
  const rotated = await expectStatus(call("POST", `/v1/keys/${key.id}/rotate`, alice, {}), 201, "rotate");
  await expectStatus(call("DELETE", `/v1/keys/${rotated.id}`, alice), 204, "revoke");

  const expected = ["key.created", "key.rotated", "key.created", "key.revoked"];
  const types = () => received.filter((r) => r.path === "/alice").map((r) => JSON.parse(r.body).type);
  await waitFor(
    () =>
      expected.every((type) => types().filter((t) => t === type).length >= expected.filter((e) => e === type).length),
    "alice's four events",
  );
  const last = Math.max(...received.map((r) => r.at));
  console.log(`received ${types().join(", ")} within ${((last - started) / 1000).toFixed(1)} s`);
  if (received.some((r) => r.path === "/bob")) throw new Error("bob's endpoint received alice's events");

  const dir = mkdtempSync(join(tmpdir(), "latchkey-webhooks-"));
  writeFileSync(join(dir, "verify.mjs"), snippet("Node", "js"));
  const { verifyWebhook } = await import(pathToFileURL(join(dir, "verify.mjs")).href);
  const python = ["/usr/bin/python3", "python3"].find((candidate) => have(candidate, ["--version"]));
  const php = have("php", ["--version"]) ? "php" : null;
  writeFileSync(
    join(dir, "verify.py"),
    `${snippet("Python", "python")}\n\nimport json, sys\nd = json.load(sys.stdin)\nprint("ok" if verify_webhook(d["secret"], d["headers"], d["body"].encode()) else "bad")\n`,
  );
  writeFileSync(
    join(dir, "verify.php"),
    `<?php\n${snippet("PHP", "php")}\n$d = json_decode(file_get_contents('php://stdin'), true);\necho verify_webhook($d['secret'], $d['headers'], $d['body']) ? 'ok' : 'bad';\n`,
  );
  for (const delivery of received.filter((r) => r.path === "/alice")) {
    const headers = {
      "webhook-id": delivery.headers["webhook-id"],
      "webhook-timestamp": delivery.headers["webhook-timestamp"],
      "webhook-signature": delivery.headers["webhook-signature"],
    };
    const body = JSON.parse(delivery.body);
    if (delivery.body.includes(key.key) || delivery.body.includes(rotated.key))
      throw new Error("a delivery holds a key");
    if (body.data.owner.id !== "webhooks-alice") throw new Error(`wrong owner in ${delivery.body}`);
    if (!verifyWebhook(hook.secret, headers, delivery.body))
      throw new Error(`Node snippet refused ${headers["webhook-id"]}`);
    if (verifyWebhook(`whsec_${Buffer.alloc(32).toString("base64")}`, headers, delivery.body)) {
      throw new Error("Node snippet accepted another secret");
    }
    const input = JSON.stringify({ secret: hook.secret, headers, body: delivery.body });
    for (const [name, command, file] of [
      ["Python", python, "verify.py"],
      ["PHP", php, "verify.php"],
    ]) {
      if (!command) continue;
      const run = spawnSync(command, [join(dir, file)], { input, encoding: "utf8" });
      if (run.stdout.trim() !== "ok") throw new Error(`${name} snippet: ${run.stdout}${run.stderr}`);
    }
  }
  console.log(
    `every signature verified by the docs' snippets: Node${python ? ", Python" : " (no python3)"}${php ? ", PHP" : " (no php)"}`,
  );
  rmSync(dir, { recursive: true, force: true });
  const log = await expectStatus(call("GET", `/v1/webhooks/${hook.id}/deliveries`, alice), 200, "delivery log");
  if (!log.data.every((d) => d.status === "delivered" && d.attempts === 1 && d.last_response_status === 204)) {
    throw new Error(`delivery log: ${JSON.stringify(log.data)}`);
  }
  console.log("webhooks end to end: ok");
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  receiver.close();
  server.stop();
}
