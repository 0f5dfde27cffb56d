// npm run leak:report -- <key>... [--to http://127.0.0.1:8787] [--keys-port 8788]
//
// Plays GitHub's secret scanning against a local latchkey (docs/leaks.md, "Trying it locally"): serves
// a P-256 public key as GitHub publishes its keys, on http://127.0.0.1:<keys-port>/keys, signs a report
// naming the keys given as GitHub signs it (base64 DER ECDSA over the exact body), posts it to
// <to>/v1/leaks/github and prints the answer. Start latchkey pointing at that URL first:
//
//   npm start -- --var GITHUB_SECRET_SCANNING_KEYS_URL:http://127.0.0.1:8788/keys
//
// The key pair is kept in .wrangler/leak-report-key.json, so a running latchkey, which caches the keys
// it fetched, still knows it on the next run. For local development only: it never talks to GitHub.
import { createServer } from "node:http";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { webcrypto as crypto } from "node:crypto";
import { root } from "./dev-config.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  if (at === -1) return fallback;
  const value = args[at + 1];
  args.splice(at, 2);
  return value;
};
const to = option("--to", "http://127.0.0.1:8787").replace(/\/$/, "");
const keysPort = Number(option("--keys-port", "8788"));
const keys = args.filter((arg) => !arg.startsWith("--"));
if (keys.length === 0) {
  console.error("usage: npm run leak:report -- <key>... [--to http://127.0.0.1:8787] [--keys-port 8788]");
  process.exit(2);
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const stateFile = `${root}.wrangler/leak-report-key.json`;

/** The key pair of earlier runs, or a new one (saved). */
async function keyPair() {
  if (existsSync(stateFile)) {
    const saved = JSON.parse(readFileSync(stateFile, "utf8"));
    return {
      identifier: saved.identifier,
      privateKey: await crypto.subtle.importKey("jwk", saved.privateJwk, ALGORITHM, false, ["sign"]),
      publicJwk: saved.publicJwk,
    };
  }
  const pair = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const saved = {
    identifier: `local-${crypto.randomUUID()}`,
    privateJwk: await crypto.subtle.exportKey("jwk", pair.privateKey),
    publicJwk: await crypto.subtle.exportKey("jwk", pair.publicKey),
  };
  mkdirSync(`${root}.wrangler`, { recursive: true });
  writeFileSync(stateFile, JSON.stringify(saved), { mode: 0o600 });
  return { identifier: saved.identifier, privateKey: pair.privateKey, publicJwk: saved.publicJwk };
}

/** DER INTEGER of big-endian bytes (minimal, with a sign byte when the top bit is set). */
function derInteger(bytes) {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const body = [...bytes.subarray(start)];
  if (body[0] & 0x80) body.unshift(0);
  return [0x02, body.length, ...body];
}

const { identifier, privateKey, publicJwk } = await keyPair();
const publicKey = await crypto.subtle.importKey("jwk", publicJwk, ALGORITHM, true, ["verify"]);
const spki = Buffer.from(await crypto.subtle.exportKey("spki", publicKey)).toString("base64");
const pem = `-----BEGIN PUBLIC KEY-----\n${spki.match(/.{1,64}/g).join("\n")}\n-----END PUBLIC KEY-----\n`;

const server = createServer((request, response) => {
  response.setHeader("content-type", "application/json");
  response.end(JSON.stringify({ public_keys: [{ key_identifier: identifier, key: pem, is_current: true }] }));
});
await new Promise((resolve) => server.listen(keysPort, "127.0.0.1", resolve));

try {
  const body = JSON.stringify(
    keys.map((token) => ({
      token,
      type: "latchkey_api_key",
      url: "https://github.com/example/leaky/blob/main/config.js",
      source: "content",
    })),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, new TextEncoder().encode(body)),
  );
  const r = derInteger(raw.subarray(0, 32));
  const s = derInteger(raw.subarray(32));
  const der = Buffer.from([0x30, r.length + s.length, ...r, ...s]);
  const response = await fetch(`${to}/v1/leaks/github`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "Github-Public-Key-Identifier": identifier,
      "Github-Public-Key-Signature": der.toString("base64"),
    },
    body,
  });
  console.log(`POST ${to}/v1/leaks/github -> ${response.status}`);
  console.log(JSON.stringify(await response.json(), null, 2));
  process.exitCode = response.ok ? 0 : 1;
} finally {
  server.close();
}
