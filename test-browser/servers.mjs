// The processes the browser tests need: latchkey under `npm start` (wrangler dev, its own throwaway
// local state) and a tiny static "host dashboard" on another origin that embeds the component.
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { signDevToken } from "../scripts/dev-config.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

async function isUp(url) {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Starts latchkey on `port` in its own process group (wrangler and workerd included), so stop() ends
 * all of it. Resolves once /healthz answers.
 */
export async function startLatchkey({ port, allowedOrigin, logFile }) {
  const api = `http://127.0.0.1:${port}`;
  if (await isUp(`${api}/healthz`)) throw new Error(`port ${port} is already serving: stop that server first`);
  const state = mkdtempSync(join(tmpdir(), "latchkey-browser-"));
  const log = openSync(logFile, "w");
  const child = spawn(
    process.execPath,
    [
      "scripts/start.mjs",
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--persist-to",
      state,
      "--var",
      `ALLOWED_ORIGINS:${allowedOrigin}`,
      "--var",
      "DEV_UI_TOKENS:true",
    ],
    { cwd: root, detached: true, stdio: ["ignore", log, log], env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
  );
  let exited = false;
  const exit = new Promise((resolve) => child.once("exit", () => ((exited = true), resolve())));
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {}
  };
  // Last resort if this process dies without running stop().
  const onExit = () => kill("SIGKILL");
  process.once("exit", onExit);
  const stop = async () => {
    process.off("exit", onExit);
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), 5000);
    await exit;
    clearTimeout(timer);
    kill("SIGKILL"); // workerd may outlive its parent
    rmSync(state, { recursive: true, force: true });
  };
  const deadline = Date.now() + 120_000;
  while (!(await isUp(`${api}/healthz`))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`latchkey did not start on ${api} (log: ${logFile})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return { api, stop };
}

/**
 * The host dashboard: a page on another origin that loads the component from latchkey and gives it
 * a token provider backed by its own "session" endpoint (/token), as a real dashboard's backend would.
 */
export async function startHost({ port, api }) {
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme dashboard</title><link rel="icon" href="data:,">
<script type="module" src="${api}/ui/latchkey-keys.js"></script>
<script type="module" src="/host.js"></script>
<style>latchkey-keys { --lk-accent: rgb(0, 128, 0); } latchkey-keys::part(title) { letter-spacing: 2px; }</style></head>
<body><h1>Acme dashboard: Settings</h1>
<latchkey-keys id="keys" api="${api}" scopes="models:invoke metrics:read keys:read" expiring-days="10"></latchkey-keys>
</body></html>`;
  const script = `const keys = document.getElementById("keys");
keys.tokenProvider = async () => (await fetch("/token")).text();`;
  const server = createServer(async (request, response) => {
    if (request.url === "/") {
      response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(page);
    } else if (request.url === "/host.js") {
      response.writeHead(200, { "Content-Type": "text/javascript" }).end(script);
    } else if (request.url === "/token") {
      response.writeHead(200, { "Content-Type": "text/plain" }).end(await signDevToken("host-user", { org: "acme" }));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${port}`, stop: () => new Promise((resolve) => server.close(resolve)) };
}
