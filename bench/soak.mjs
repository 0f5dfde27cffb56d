// npm run soak [-- --port 8791 --duration 60 --connections 64 --no-write --smoke]
// --smoke: 3 s over 4 connections, 1 s of control, nothing written (CI: the script still runs).
//
// Load and soak: starts latchkey as the README does (scripts/start.mjs, i.e. `npm start -- --port
// <port>`: local D1 and KV under wrangler dev, here in fresh state of its own: bench/server.mjs), then drives it with autocannon for --duration seconds
// over --connections connections. Each connection loops through a key's whole life: create, verify,
// authenticate with it, list, revoke, and verify again (which must now fail). Reports requests,
// answers by status, wrong answers, and the memory (RSS) of the server's workerd processes at start
// and end; writes bench/SOAK.md. Fails (exit 1) on any 5xx, connection error or wrong answer.
//
// wrangler dev's own workerd processes grow under any load, so a control run follows on a fresh
// server: --control seconds of GET /healthz (routing only, no storage; 0 skips it). Comparing RSS
// growth per 1,000 requests separates latchkey's memory from the dev server's.
import autocannon from "autocannon";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as prettier from "prettier";
import { root, signDevToken } from "../scripts/dev-config.mjs";
import { runInfo, table } from "./results.mjs";
import { startServer, stateFolder } from "./server.mjs";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "8791" },
    duration: { type: "string", default: "60" },
    connections: { type: "string", default: "64" },
    control: { type: "string", default: "20" },
    "no-write": { type: "boolean" },
    smoke: { type: "boolean" },
  },
});
if (opts.smoke) Object.assign(opts, { duration: "3", connections: "4", control: "1", "no-write": true });
const [port, duration, connections, control] = ["port", "duration", "connections", "control"].map((name) => {
  const value = Number(opts[name]);
  if (!Number.isInteger(value) || value < (name === "control" ? 0 : 1)) throw new Error(`--${name} is out of range`);
  return value;
});
const base = `http://localhost:${port}`;
const argv = process.argv.slice(2).join(" ");

// ---- the server and its workerd processes -----------------------------------------------------

const STATE = ".wrangler/soak";
/** The running server (bench/server.mjs), one per phase. */
let server = null;

/** The workerd processes under the server's pid, from /proc: wrangler dev runs a proxy and the runtime. */
function workerdProcesses() {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const found = [];
  const walk = (pid) => {
    for (const child of children.get(pid) ?? []) {
      try {
        const args = readFileSync(`/proc/${child}/cmdline`, "utf8").split("\0");
        if (args[0]?.endsWith("/workerd")) {
          const role = args.some((a) => a.includes(`:${port}`)) ? `proxy on :${port}` : "runtime (runs latchkey)";
          found.push({ pid: child, role });
        }
      } catch {
        // gone meanwhile
      }
      walk(child);
    }
  };
  walk(server.pid);
  return found;
}

/** Resident set size in MB, or NaN when the process is gone. */
function rssMb(pid) {
  try {
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

// ---- the load ---------------------------------------------------------------------------------

/**
 * One key's life, looped by every connection. `wrong` counts answers that are well-formed but
 * incorrect (a fresh key not valid, a revoked key still valid, ...).
 */
function lifecycle(jwts, hotKey, wrong) {
  const json = { "content-type": "application/json" };
  let next = 0;
  const check = (what, ok) => {
    if (!ok) wrong[what] = (wrong[what] ?? 0) + 1;
  };
  const parse = (body) => {
    try {
      return JSON.parse(body);
    } catch {
      return {};
    }
  };
  const verify = (key, expectValid, what) => ({
    method: "POST",
    path: "/v1/verify",
    headers: json,
    setupRequest: (request, context) =>
      context.key ? { ...request, body: JSON.stringify({ key: key(context) }) } : null,
    onResponse: (status, body) => check(what, status === 200 && parse(body).valid === expectValid),
  });
  const withJwt = (context) => ({ authorization: `Bearer ${context.jwt}` });
  return [
    {
      method: "POST",
      path: "/v1/keys",
      setupRequest: (request, context) => {
        context.jwt = jwts[next++ % jwts.length];
        return { ...request, headers: { ...json, ...withJwt(context) }, body: JSON.stringify({ name: "soak" }) };
      },
      onResponse: (status, body, context) => {
        const created = status === 201 ? parse(body) : {};
        check("create", status === 201 && typeof created.key === "string");
        context.key = created.key;
        context.id = created.id;
      },
    },
    verify((c) => c.key, true, "verify a new key"),
    verify(() => hotKey, true, "verify a long-lived key"),
    {
      method: "GET",
      path: "/v1/whoami",
      setupRequest: (request, context) =>
        context.key ? { ...request, headers: { authorization: `Bearer ${context.key}` } } : null,
      onResponse: (status, body, context) => check("whoami", status === 200 && parse(body).key_id === context.id),
    },
    {
      method: "GET",
      path: "/v1/keys?limit=20",
      setupRequest: (request, context) => ({ ...request, headers: withJwt(context) }),
      onResponse: (status, body) => check("list", status === 200 && Array.isArray(parse(body).data)),
    },
    {
      method: "DELETE",
      setupRequest: (request, context) =>
        context.id ? { ...request, path: `/v1/keys/${context.id}`, headers: withJwt(context) } : null,
      onResponse: (status) => check("revoke", status === 204),
    },
    verify((c) => c.key, false, "verify a revoked key"),
  ];
}

function run(requests, seconds) {
  return new Promise((resolve, reject) => {
    const statuses = {};
    const instance = autocannon(
      { url: base, connections, duration: seconds, requests, timeout: 10 },
      (error, result) => (error ? reject(error) : resolve({ result, statuses })),
    );
    instance.on("response", (_client, status) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
  });
}

/** On a fresh server: builds the requests, runs them for `seconds`, samples workerd RSS every second. */
async function phase(seconds, makeRequests) {
  server = await startServer({ port, state: STATE });
  try {
    const requests = await makeRequests();
    const processes = workerdProcesses().map((p) => ({ ...p, start: rssMb(p.pid), series: [] }));
    if (processes.length === 0) throw new Error("No workerd process found under the server");
    const sampler = setInterval(() => {
      for (const p of processes) p.series.push(rssMb(p.pid));
    }, 1000);
    const { result, statuses } = await run(requests, seconds).finally(() => clearInterval(sampler));
    for (const p of processes) p.end = rssMb(p.pid);
    const total = Object.values(statuses).reduce((a, b) => a + b, 0);
    return { result, statuses, total, processes };
  } finally {
    await server.stop();
  }
}

async function soakRequests(wrong) {
  const jwts = await Promise.all(Array.from({ length: 8 }, (_, i) => signDevToken(`soak-${Date.now()}-${i}`)));
  const seeded = await fetch(`${base}/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwts[0]}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "soak long-lived" }),
  });
  if (seeded.status !== 201) throw new Error(`POST /v1/keys gave ${seeded.status}: ${await seeded.text()}`);
  return lifecycle(jwts, (await seeded.json()).key, wrong);
}

const mb = (value) => (Number.isFinite(value) ? value.toFixed(1) : "gone");

function rssRows(label, { processes, total }) {
  return processes.map((p) => {
    const growth = p.end - p.start;
    return [
      label,
      p.pid,
      p.role,
      mb(p.start),
      mb(Math.max(...p.series, p.end)),
      mb(p.end),
      mb(growth),
      (growth / (total / 1000)).toFixed(2),
    ];
  });
}

// ---- main -------------------------------------------------------------------------------------

const info = runInfo(`npm run soak${argv ? ` -- ${argv}` : ""}`);
let exitCode = 0;
try {
  console.log(`Soak: npm start -- --port ${port} (scripts/start.mjs), ${duration} s, ${connections} connections`);
  const wrong = {};
  const soak = await phase(duration, () => soakRequests(wrong));
  let baseline = null;
  if (control > 0) {
    console.log(`Control: a fresh server, ${control} s of GET /healthz, ${connections} connections`);
    baseline = await phase(control, () => [{ method: "GET", path: "/healthz" }]);
  }

  const { result, statuses, total } = soak;
  const fiveXx = Object.entries(statuses)
    .filter(([status]) => Number(status) >= 500)
    .reduce((sum, [, n]) => sum + n, 0);
  const wrongTotal = Object.values(wrong).reduce((a, b) => a + b, 0);
  const loggedErrors = server.log.filter((line) => /latchkey: unexpected error/.test(line)).length;
  const passed = fiveXx === 0 && result.errors === 0 && result.timeouts === 0 && wrongTotal === 0;
  if (!passed) exitCode = 1;

  const statusRows = Object.entries(statuses).map(([status, n]) => [status, n, `${((100 * n) / total).toFixed(2)} %`]);
  const memoryRows = [
    ...rssRows("soak", soak),
    ...(baseline ? rssRows(`control (GET /healthz, ${baseline.total.toLocaleString("en")} requests)`, baseline) : []),
  ];
  const seriesRows = soak.processes.map((p) => [
    p.role,
    [p.start, ...p.series.filter((_, i) => (i + 1) % 10 === 0)].map((v) => mb(v)).join(" → "),
  ]);
  const summary = [
    `- Requests: ${total.toLocaleString("en")} answered in ${result.duration} s (${Math.round(total / result.duration)} req/s), ≈ ${Math.round(total / 7).toLocaleString("en")} key lifecycles of 7 requests`,
    `- Latency: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms (autocannon, whole ms)`,
    `- 5xx: ${fiveXx}; connection errors: ${result.errors}; timeouts: ${result.timeouts}`,
    `- Wrong answers: ${wrongTotal}${
      wrongTotal
        ? ` (${Object.entries(wrong)
            .map(([what, n]) => `${what}: ${n}`)
            .join(", ")})`
        : ""
    }`,
    `- "unexpected error" lines in the server log: ${loggedErrors}`,
    `- Verdict: ${passed ? "PASS" : "FAIL"} (zero 5xx, zero connection errors, zero wrong answers)`,
  ].join("\n");
  const memoryHeader = ["run", "pid", "workerd", "start", "peak", "end", "end - start", "per 1,000 requests"];

  console.log(`\n${summary}\n`);
  console.log(table(["status", "requests", "share"], statusRows));
  console.log(`\n${table(memoryHeader, memoryRows)}\n`);
  console.log(table(["workerd", "RSS every 10 s (MB)"], seriesRows));

  if (!opts["no-write"]) {
    const path = `${root}bench/SOAK.md`;
    const markdown = `# Soak results

Written by \`npm run soak\` (bench/soak.mjs). Each of the ${connections} connections loops through one key's
whole life, 7 requests: \`POST /v1/keys\` (JWT), \`POST /v1/verify\` of the new key (must be valid), \`POST
/v1/verify\` of a long-lived key (must be valid), \`GET /v1/whoami\` with the new key (must name it),
\`GET /v1/keys?limit=20\` (JWT), \`DELETE /v1/keys/:id\` (must be 204), \`POST /v1/verify\` of the revoked
key (must be invalid). Wrong answers count responses with the right status but the wrong verdict.

${info}
- Server: \`npm start -- --port ${port} --persist-to ${stateFolder(STATE)}\` (scripts/start.mjs: local D1 and KV under
  wrangler dev, in fresh local state migrated first); RSS from /proc for each workerd process under it.
  Other work shared the machine's cores during the run, so throughput and latency are indicative only.

${summary}

## Answers by status

${table(["status", "requests", "share"], statusRows)}

## Server memory (RSS, MB)

wrangler dev runs two workerd processes: a proxy on the public port and the runtime that runs latchkey
(and the local D1 and KV). The control run is the same server, fresh, serving only \`GET /healthz\`
(routing, no storage) for ${control} s: growth it shows is the dev server's, not latchkey's.

${table(memoryHeader, memoryRows)}

During the soak, every 10 s:

${table(["workerd", "RSS (MB)"], seriesRows)}
`;
    const options = { ...(await prettier.resolveConfig(path)), filepath: path };
    writeFileSync(path, await prettier.format(markdown, options));
    console.log("Wrote bench/SOAK.md");
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  console.error(`Server log (last lines):\n${(server?.log ?? []).slice(-20).join("\n")}`);
  exitCode = 1;
} finally {
  await server?.stop();
}
process.exit(exitCode);
