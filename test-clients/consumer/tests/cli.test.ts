/**
 * The latchkey CLI end to end against a running latchkey: login -> create -> list -> get -> verify
 * -> revoke -> verify (invalid); the config file's permissions; --json output; exit codes; and the
 * new key printed exactly once, on stdout, by create alone.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  createClient,
  type ApiKey,
  type CreatedApiKey,
  type EventList,
  type KeyList,
  type UsageReport,
  type VerifyResult,
} from "@latchkey/client";
import { BASE, cli, type CliRun, token, uniqueSub } from "./helpers.js";

/** A fresh config home, so each test logs in on its own. */
async function home(): Promise<Record<string, string>> {
  return { XDG_CONFIG_HOME: await mkdtemp(join(tmpdir(), "latchkey-cli-")) };
}

function expectExit(run: CliRun, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}, stderr: ${run.stderr}`);
}

describe("the latchkey CLI against latchkey", () => {
  it("logs in, creates, lists, gets, verifies and revokes; the key appears once, on stdout", async () => {
    const env = await home();
    const sub = uniqueSub("cli");
    const jwt = token(sub);
    const runs: CliRun[] = [];
    const latchkey = async (args: string[], stdin?: string) => {
      const run = await cli(args, { env, ...(stdin === undefined ? {} : { stdin }) });
      runs.push(run);
      return run;
    };

    const login = await latchkey(["login", "--url", BASE, "--token-stdin"], jwt + "\n");
    expectExit(login, 0, "login");
    assert.match(login.stderr, new RegExp(`as user ${sub}`));
    const configFile = join(env.XDG_CONFIG_HOME ?? "", "latchkey", "config.json");
    assert.equal((await stat(configFile)).mode & 0o777, 0o600);
    assert.equal((await stat(join(configFile, ".."))).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(await readFile(configFile, "utf8")), { url: BASE, token: jwt });

    const create = await latchkey([
      "keys",
      "create",
      "--name",
      "cli key",
      "--scope",
      "models:invoke",
      "--resource",
      "m1",
    ]);
    expectExit(create, 0, "create");
    const key = create.stdout.trim();
    assert.match(key, /^lk_[0-9A-Za-z]+$/);
    assert.equal(create.stdout, `${key}\n`, "create prints the key and nothing else on stdout");
    assert.match(create.stderr, /shown only now/);

    const list = await latchkey(["keys", "list", "--json"]);
    expectExit(list, 0, "list");
    const page = JSON.parse(list.stdout) as KeyList;
    assert.equal(page.data.length, 1);
    const [listed] = page.data as [ApiKey];
    assert.equal(listed.name, "cli key");
    assert.ok(key.startsWith(listed.start));

    const table = await latchkey(["keys", "list"]);
    expectExit(table, 0, "list as a table");
    const [header, row, ...rest] = table.stdout.trimEnd().split("\n");
    assert.match(header ?? "", /^ID +NAME +START +SCOPES +EXPIRES +RATELIMITS +CREDITS +STATUS$/);
    assert.match(row ?? "", new RegExp(`^${listed.id} +cli key +${listed.start} +models:invoke +never +- +- +active$`));
    assert.deepEqual(rest, []);

    const get = await latchkey(["keys", "get", listed.id, "--json"]);
    expectExit(get, 0, "get");
    assert.deepEqual(JSON.parse(get.stdout), listed);

    const valid = await latchkey(["verify", "--scope", "models:invoke", "--resource", "m1", "--json"], key);
    expectExit(valid, 0, "verify");
    assert.equal((JSON.parse(valid.stdout) as VerifyResult).key_id, listed.id);
    const wrongScope = await latchkey(["verify", "--scope", "metrics:read"], key);
    expectExit(wrongScope, 6, "verify for a scope the key lacks");
    assert.equal(wrongScope.stdout, "INSUFFICIENT_SCOPE\n");

    const revoke = await latchkey(["keys", "revoke", listed.id]);
    expectExit(revoke, 0, "revoke");
    const revoked = await latchkey(["verify"], key);
    expectExit(revoked, 6, "verify after revoke");
    assert.equal(revoked.stdout, "REVOKED\n");
    assert.equal((await latchkey(["keys", "list", "--json"])).stdout.includes(listed.id), false);
    const withRevoked = JSON.parse((await latchkey(["keys", "list", "--include-revoked", "--json"])).stdout) as KeyList;
    assert.notEqual(withRevoked.data[0]?.revoked_at, null);

    // The key was given to verify on stdin; it was printed by create only.
    const printed = runs.flatMap((run) => [run.stdout, run.stderr]).join("\n");
    assert.equal(printed.split(key).length - 1, 1, "the key was printed more than once");

    expectExit(await latchkey(["logout"]), 0, "logout");
    await assert.rejects(stat(configFile), { code: "ENOENT" });
    expectExit(await latchkey(["keys", "list"]), 3, "list after logout");
  });

  it("prints the created key in --json output, once", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const run = await cli(["keys", "create", "--name", "json", "--metadata", '{"team":"ops"}', "--json"], { env });
    expectExit(run, 0, "create --json");
    const created = JSON.parse(run.stdout) as CreatedApiKey;
    assert.deepEqual(created.metadata, { team: "ops" });
    assert.equal(run.stdout.split(created.key).length - 1, 1);
    assert.equal(run.stderr.includes(created.key), false);
  });

  it("exits 4 for an unknown key, 1 for a refused request, 2 for usage, 3 for auth, 5 when unreachable", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const missing = await cli(["keys", "get", crypto.randomUUID()], { env });
    expectExit(missing, 4, "get unknown");
    assert.match(missing.stderr, /Not found/i);

    const invalid = await cli(["keys", "create", "--name", "x", "--scope", "Not A Scope"], { env });
    expectExit(invalid, 1, "create with a bad scope");
    assert.match(invalid.stderr, /scopes\.0:/);
    assert.equal(invalid.stdout, "");

    expectExit(await cli(["keys", "frobnicate"], { env }), 2, "unknown command");
    const bare = await cli([], { env });
    expectExit(bare, 2, "no command");
    assert.equal(bare.stdout, "", "usage goes to stderr");
    assert.match(bare.stderr, /^latchkey: manage latchkey API keys/);
    expectExit(await cli(["keys", "list", "--url", "ftp://example.com"], { env }), 2, "not an http URL");
    expectExit(await cli(["login", "--url", "nope", "--token-stdin"], { env, stdin: "a.b.c" }), 2, "not a URL");
    expectExit(await cli(["keys", "get"], { env }), 2, "missing id");
    expectExit(await cli(["keys", "list", "--limit", "ten"], { env }), 2, "bad --limit");
    expectExit(await cli(["keys", "list", "--bogus"], { env }), 2, "unknown option");
    expectExit(await cli(["keys", "create"], { env }), 2, "create without --name");

    expectExit(await cli(["keys", "list"], { env: await home() }), 3, "not logged in");
    const expired = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli"), -3600) };
    expectExit(await cli(["keys", "list"], { env: expired }), 3, "expired token");

    const down = { LATCHKEY_URL: "http://127.0.0.1:9", LATCHKEY_TOKEN: "x.y.z" };
    const unreachable = await cli(["keys", "list"], { env: down });
    expectExit(unreachable, 5, "unreachable");
    assert.match(unreachable.stderr, /Network error/);
  });

  it("login stores no API key, refuses a token on the command line, and rejects a bad token", async () => {
    const env = await home();
    const configFile = join(env.XDG_CONFIG_HOME ?? "", "latchkey", "config.json");
    const sub = uniqueSub("cli");
    const created = JSON.parse(
      (
        await cli(["keys", "create", "--name", "k", "--json"], {
          env: { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(sub) },
        })
      ).stdout,
    ) as CreatedApiKey;

    expectExit(
      await cli(["login", "--url", BASE, "--token-stdin"], { env, stdin: created.key }),
      2,
      "login with a key",
    );
    expectExit(await cli(["login", "--url", BASE, "--token", token(sub)], { env }), 2, "token as an argument");
    expectExit(await cli(["login", "--url", BASE, "--token-stdin"], { env, stdin: "a.b.c" }), 3, "a bad JWT");
    await assert.rejects(stat(configFile), { code: "ENOENT" });

    // A key may still act through the environment, which is never written anywhere.
    const viaKey = await cli(["whoami", "--json"], {
      env: { ...env, LATCHKEY_URL: BASE, LATCHKEY_TOKEN: created.key },
    });
    expectExit(viaKey, 0, "whoami with a key");
    assert.equal(JSON.parse(viaKey.stdout).key_id, created.id);
    await assert.rejects(stat(configFile), { code: "ENOENT" });
  });

  it("revokes with --cascade: the key and every key descending from it", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const create = async (as: Record<string, string>, name: string) => {
      const run = await cli(["keys", "create", "--name", name, "--scope", "keys:write", "--json"], { env: as });
      expectExit(run, 0, `create ${name}`);
      return JSON.parse(run.stdout) as CreatedApiKey;
    };
    const parent = await create(env, "parent");
    const child = await create({ ...env, LATCHKEY_TOKEN: parent.key }, "child");
    const grandchild = await create({ ...env, LATCHKEY_TOKEN: child.key }, "grandchild");
    const other = await create(env, "other");
    assert.equal(grandchild.parent_id, child.id);

    const made = await cli(["keys", "list", "--created-by", `key:${parent.id}`, "--json"], { env });
    expectExit(made, 0, "list --created-by");
    assert.deepEqual(
      (JSON.parse(made.stdout) as KeyList).data.map((k) => k.id),
      [child.id],
    );

    const revoke = await cli(["keys", "revoke", parent.id, "--cascade", "--json"], { env });
    expectExit(revoke, 0, "revoke --cascade");
    assert.deepEqual(JSON.parse(revoke.stdout), { id: parent.id, revoked: true, cascade: true });
    for (const key of [parent, child, grandchild]) {
      const run = await cli(["verify"], { env, stdin: key.key });
      expectExit(run, 6, `verify ${key.name} after the cascade`);
      assert.equal(run.stdout, "REVOKED\n");
    }
    expectExit(await cli(["verify"], { env, stdin: other.key }), 0, "a key outside the lineage");

    const revoked = await cli(["keys", "list", "--status", "revoked", "--json"], { env });
    assert.deepEqual(
      (JSON.parse(revoked.stdout) as KeyList).data.map((k) => k.name),
      ["grandchild", "child", "parent"],
    );
    const active = await cli(["keys", "list", "--status", "active", "--owner-type", "user"], { env });
    expectExit(active, 0, "list --status active --owner-type user");
    assert.deepEqual(
      active.stdout
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((row) => row.split(/ +/).at(-1)),
      ["active"],
    );
    assert.match(active.stdout, new RegExp(`^${other.id} +other `, "m"));
    const workspace = await cli(["keys", "list", "--owner-type", "workspace", "--json"], { env });
    expectExit(workspace, 0, "list --owner-type workspace");
    assert.deepEqual((JSON.parse(workspace.stdout) as KeyList).data, []);
    const badStatus = await cli(["keys", "list", "--status", "gone"], { env });
    expectExit(badStatus, 2, "an unknown --status");
    assert.match(badStatus.stderr, /--status must be one of active, revoked, expired/);
    expectExit(await cli(["keys", "list", "--owner-type", "team"], { env }), 2, "an unknown --owner-type");
  });

  it("exits 1 for the owner's key quota (a 403 naming a limit), 5 with the wait for a creation limit (429)", async () => {
    const answers = [
      { status: 403, headers: {}, body: { title: "Forbidden", status: 403, limit: "MAX_KEYS_PER_OWNER" } },
      { status: 429, headers: { "Retry-After": "42" }, body: { title: "Too Many Requests", status: 429 } },
      { status: 403, headers: {}, body: { title: "Forbidden", status: 403, exceeded: "scopes" } },
    ];
    const server = createServer((_req, res) => {
      const answer = answers.shift();
      res.writeHead(answer?.status ?? 500, { "Content-Type": "application/problem+json", ...answer?.headers });
      res.end(JSON.stringify({ type: "about:blank", ...answer?.body }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const env = {
        LATCHKEY_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        LATCHKEY_TOKEN: "a.b.c",
      };
      const quota = await cli(["keys", "create", "--name", "one too many"], { env });
      expectExit(quota, 1, "create over the quota");
      assert.match(quota.stderr, /Forbidden \(403\)/);
      const limited = await cli(["keys", "create", "--name", "too fast"], { env });
      expectExit(limited, 5, "create over the creation limit");
      assert.match(limited.stderr, /\(429\); retry after 42 s/);
      expectExit(await cli(["keys", "create", "--name", "too strong"], { env }), 3, "create beyond the token's powers");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("lists every page with --all", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    for (let i = 0; i < 3; i++) expectExit(await cli(["keys", "create", "--name", `k${i}`], { env }), 0, "create");
    const one = await cli(["keys", "list", "--limit", "2"], { env });
    assert.equal(one.stdout.trimEnd().split("\n").length, 3, "a header and two rows");
    assert.match(one.stderr, /More keys: --cursor \S+/);
    const all = JSON.parse((await cli(["keys", "list", "--limit", "2", "--all", "--json"], { env })).stdout) as KeyList;
    assert.deepEqual(
      all.data.map((k) => k.name),
      ["k2", "k1", "k0"],
    );
  });
});

describe("the latchkey CLI's lifecycle commands against latchkey", () => {
  it("rotates: the new key once, on stdout only; the old key stops at once, or after --grace", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const runs: CliRun[] = [];
    const latchkey = async (args: string[], stdin?: string) => {
      const run = await cli(args, { env, ...(stdin === undefined ? {} : { stdin }) });
      runs.push(run);
      return run;
    };
    const original = JSON.parse(
      (await latchkey(["keys", "create", "--name", "rotating", "--json"])).stdout,
    ) as CreatedApiKey;

    const rotate = await latchkey(["keys", "rotate", original.id]);
    expectExit(rotate, 0, "rotate");
    const replacement = rotate.stdout.trim();
    assert.match(replacement, /^lk_[0-9A-Za-z]+$/);
    assert.equal(rotate.stdout, `${replacement}\n`, "rotate prints the new key and nothing else on stdout");
    assert.match(rotate.stderr, new RegExp(`Rotated ${original.id}: new key \\S+ .*old key stopped working now`));
    assert.match(rotate.stderr, /shown only now/);
    const verdict = JSON.parse((await latchkey(["verify", "--json"], replacement)).stdout) as VerifyResult;
    assert.equal(verdict.code, "VALID");
    assert.notEqual(verdict.key_id, original.id);
    const newId = verdict.key_id ?? "";
    expectExit(await latchkey(["verify"], original.key), 6, "the old key after a rotation without grace");
    const rotatedView = JSON.parse((await latchkey(["keys", "get", newId, "--json"])).stdout) as ApiKey;
    assert.equal(rotatedView.rotated_from, original.id);
    assert.equal(rotatedView.name, "rotating");

    // With --grace and --json: the old (now the replacement) key keeps working for the grace period.
    const graced = await latchkey(["keys", "rotate", newId, "--grace", "3600", "--json"]);
    expectExit(graced, 0, "rotate --grace --json");
    const third = JSON.parse(graced.stdout) as CreatedApiKey;
    assert.equal(third.rotated_from, newId);
    assert.equal(graced.stdout.split(third.key).length - 1, 1);
    expectExit(await latchkey(["verify"], replacement), 0, "the old key within its grace period");
    const old = JSON.parse((await latchkey(["keys", "get", newId, "--json"])).stdout) as ApiKey;
    const graceEnd = Date.parse(old.expires_at ?? "");
    assert.ok(Math.abs(graceEnd - (Date.now() + 3600_000)) < 120_000, `old key expires at ${old.expires_at}`);

    // Each key was printed once: by the create or rotate that made it (verify reads it from stdin).
    const printed = runs.flatMap((run) => [run.stdout, run.stderr]).join("\n");
    for (const key of [original.key, replacement, third.key]) assert.equal(printed.split(key).length - 1, 1);

    const revoked = JSON.parse((await latchkey(["keys", "create", "--name", "gone", "--json"])).stdout) as ApiKey;
    expectExit(await latchkey(["keys", "revoke", revoked.id]), 0, "revoke");
    const conflict = await latchkey(["keys", "rotate", revoked.id]);
    expectExit(conflict, 1, "rotate a revoked key (409)");
    assert.match(conflict.stderr, /\(409\)/);
    assert.equal(conflict.stdout, "");
    expectExit(await latchkey(["keys", "rotate", crypto.randomUUID()]), 4, "rotate an unknown key");
    const tooLong = await latchkey(["keys", "rotate", third.id, "--grace", "604801"]);
    expectExit(tooLong, 1, "a grace beyond 7 days (422)");
    assert.match(tooLong.stderr, /grace_seconds:/);
    expectExit(await latchkey(["keys", "rotate", third.id, "--grace", "1h"]), 2, "a grace that is not a number");
    expectExit(await latchkey(["keys", "rotate"]), 2, "rotate without an id");
    const reader = JSON.parse(
      (await latchkey(["keys", "create", "--name", "reader", "--scope", "keys:read", "--json"])).stdout,
    ) as CreatedApiKey;
    const refused = await cli(["keys", "rotate", third.id], { env: { ...env, LATCHKEY_TOKEN: reader.key } });
    expectExit(refused, 3, "rotate with a key lacking keys:write (403)");
    assert.equal(refused.stdout, "");
    expectExit(await latchkey(["verify"], third.key), 0, "the key a refused rotate left alone");
  });

  it("updates settings, clears them, disables and enables a key", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const created = JSON.parse(
      (await cli(["keys", "create", "--name", "before", "--scope", "models:invoke", "--json"], { env })).stdout,
    ) as CreatedApiKey;
    const expiry = new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
    const update = await cli(
      [
        "keys",
        "update",
        created.id,
        "--name",
        "after",
        "--scope",
        "models:invoke",
        "--scope",
        "metrics:read",
        "--resource",
        "m1",
        "--expires-at",
        expiry,
        "--allowed-ip",
        "203.0.113.0/24",
        "--metadata",
        '{"team":"ml"}',
        "--json",
      ],
      { env },
    );
    expectExit(update, 0, "update");
    const updated = JSON.parse(update.stdout) as ApiKey;
    assert.equal(updated.name, "after");
    assert.deepEqual(updated.scopes, ["models:invoke", "metrics:read"]);
    assert.deepEqual(updated.resources, ["m1"]);
    assert.equal(Date.parse(updated.expires_at ?? ""), Date.parse(expiry));
    assert.deepEqual(updated.allowed_ips, ["203.0.113.0/24"]);
    assert.deepEqual(updated.metadata, { team: "ml" });
    assert.match(update.stderr, /Updated \S+: name, scopes, resources, expires_at, allowed_ips, metadata\./);
    assert.deepEqual(JSON.parse((await cli(["keys", "get", created.id, "--json"], { env })).stdout), updated);
    const fromElsewhere = await cli(["verify", "--ip", "198.51.100.7"], { env, stdin: created.key });
    expectExit(fromElsewhere, 6, "verify from outside the allow-list");
    assert.equal(fromElsewhere.stdout, "IP_NOT_ALLOWED\n");
    const fromInside = ["verify", "--ip", "203.0.113.9", "--scope", "metrics:read", "--resource", "m1"];
    expectExit(await cli(fromInside, { env, stdin: created.key }), 0, "verify from inside the allow-list");

    const cleared = await cli(
      ["keys", "update", created.id, "--all-resources", "--no-expiry", "--any-ip", "--no-metadata"],
      { env },
    );
    expectExit(cleared, 0, "update clearing settings");
    const table = Object.fromEntries(
      cleared.stdout
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((line) => line.split(/ {2,}/) as [string, string]),
    );
    assert.equal(table.name, "after");
    assert.equal(table.resources, "-");
    assert.equal(table.expires_at, "-");
    assert.equal(table.allowed_ips, "-");
    assert.equal(table.metadata, "-");
    expectExit(await cli(["verify", "--resource", "m9"], { env, stdin: created.key }), 0, "any resource, any address");

    const disable = await cli(["keys", "disable", created.id], { env });
    expectExit(disable, 0, "disable");
    assert.match(disable.stderr, /Disabled \S+: it fails with DISABLED/);
    const disabled = await cli(["verify"], { env, stdin: created.key });
    expectExit(disabled, 6, "verify a disabled key");
    assert.equal(disabled.stdout, "DISABLED\n");
    assert.match((await cli(["keys", "list"], { env })).stdout, new RegExp(`^${created.id} .* disabled$`, "m"));
    const enable = await cli(["keys", "enable", created.id, "--json"], { env });
    expectExit(enable, 0, "enable");
    assert.equal((JSON.parse(enable.stdout) as ApiKey).enabled, true);
    expectExit(await cli(["verify"], { env, stdin: created.key }), 0, "verify after enabling");

    expectExit(await cli(["keys", "update", created.id], { env }), 2, "update without a change");
    const both = await cli(["keys", "update", created.id, "--expires-at", expiry, "--no-expiry"], { env });
    expectExit(both, 2, "contradicting flags");
    assert.match(both.stderr, /--expires-at and --no-expiry contradict/);
    const bad = await cli(["keys", "update", created.id, "--scope", "Not A Scope"], { env });
    expectExit(bad, 1, "an invalid scope (422)");
    assert.match(bad.stderr, /scopes\.0:/);
    expectExit(await cli(["keys", "update", created.id, "--metadata", "[1]"], { env }), 2, "metadata not an object");
    expectExit(await cli(["keys", "disable", crypto.randomUUID()], { env }), 4, "disable an unknown key");
    expectExit(await cli(["keys", "enable"], { env }), 2, "enable without an id");
  });

  it("sets, adds and takes credits, and shows usage per bucket", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const owner = createClient({ baseUrl: BASE, token: env.LATCHKEY_TOKEN });
    const created = await owner.create({ name: "metered", credits: { remaining: 1 } });
    const add = await cli(["keys", "credits", created.id, "--add", "4"], { env });
    expectExit(add, 0, "credits --add");
    assert.equal(add.stdout, "5\n");
    assert.equal((await cli(["keys", "credits", created.id, "--take", "9"], { env })).stdout, "0\n", "stops at 0");
    const set = await cli(["keys", "credits", created.id, "--set", "1", "--json"], { env });
    assert.deepEqual(JSON.parse(set.stdout), { remaining: 1 });
    expectExit(await cli(["verify"], { env, stdin: created.key }), 0, "a verification spends the credit");
    const spent = await cli(["verify"], { env, stdin: created.key });
    expectExit(spent, 6, "no credit left");
    assert.equal(spent.stdout, "USAGE_EXCEEDED\n");
    expectExit(await cli(["keys", "credits", created.id], { env }), 2, "no operation");
    expectExit(await cli(["keys", "credits", created.id, "--set", "1", "--add", "1"], { env }), 2, "two operations");
    expectExit(await cli(["keys", "credits", created.id, "--add", "-1"], { env }), 2, "not a whole number");
    expectExit(await cli(["keys", "credits", crypto.randomUUID(), "--set", "1"], { env }), 4, "an unknown key");

    const usage = await cli(["keys", "usage", created.id, "--granularity", "day", "--json"], { env });
    expectExit(usage, 0, "usage --json");
    const report = JSON.parse(usage.stdout) as UsageReport;
    assert.equal(report.granularity, "day");
    const table = await cli(["keys", "usage", created.id, "--granularity", "day"], { env });
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    assert.match(
      header ?? "",
      /^START +TOTAL +VALID +RATE_LIMITED +USAGE_EXCEEDED +INSUFFICIENT_SCOPE +RESOURCE_NOT_ALLOWED +OTHER$/,
    );
    assert.equal(rows.length, report.buckets.length);
    expectExit(await cli(["keys", "usage", created.id, "--granularity", "week"], { env }), 2, "an unknown granularity");
  });

  it("lists events as a table or JSON, filtered by key, action and time, page by page or --all", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const create = async (name: string) =>
      JSON.parse((await cli(["keys", "create", "--name", name, "--json"], { env })).stdout) as CreatedApiKey;
    const start = new Date(Date.now() - 1000).toISOString();
    const first = await create("first");
    const second = await create("second");
    expectExit(await cli(["keys", "update", first.id, "--name", "renamed"], { env }), 0, "rename");
    expectExit(await cli(["keys", "disable", first.id], { env }), 0, "disable");
    expectExit(await cli(["keys", "revoke", second.id], { env }), 0, "revoke");

    const all = await cli(["events", "--json"], { env });
    expectExit(all, 0, "events --json");
    const page = JSON.parse(all.stdout) as EventList;
    assert.deepEqual(
      page.data.map((event) => [event.action, event.key_id]),
      [
        ["revoked", second.id],
        ["disabled", first.id],
        ["updated", first.id],
        ["created", second.id],
        ["created", first.id],
      ],
    );
    assert.equal(page.next_cursor, null);

    const table = await cli(["events"], { env });
    expectExit(table, 0, "events as a table");
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    assert.match(header ?? "", /^AT +KEY +ACTION +ACTOR +IP +CHANGES$/);
    assert.equal(rows.length, 5);
    assert.match(rows[2] ?? "", new RegExp(`^\\S+ +${first.id} +updated +user:\\S+ +\\S+ +name: first -> renamed$`));
    assert.match(rows[1] ?? "", /disabled .*enabled: true -> false$/);
    assert.match(rows[4] ?? "", /created .*name: first/);

    const ofFirst = JSON.parse((await cli(["events", "--key", first.id, "--json"], { env })).stdout) as EventList;
    assert.deepEqual(
      ofFirst.data.map((event) => event.action),
      ["disabled", "updated", "created"],
    );
    const creations = JSON.parse((await cli(["events", "--action", "created", "--json"], { env })).stdout) as EventList;
    assert.deepEqual(
      creations.data.map((event) => event.key_id),
      [second.id, first.id],
    );
    const since = JSON.parse((await cli(["events", "--since", start, "--json"], { env })).stdout) as EventList;
    assert.equal(since.data.length, 5);
    const until = JSON.parse((await cli(["events", "--until", start, "--json"], { env })).stdout) as EventList;
    assert.deepEqual(until.data, []);

    const one = await cli(["events", "--limit", "2"], { env });
    expectExit(one, 0, "events --limit 2");
    assert.equal(one.stdout.trimEnd().split("\n").length, 3, "a header and two rows");
    const cursor = /More events: --cursor (\S+)/.exec(one.stderr)?.[1];
    assert.ok(cursor, one.stderr);
    const next = JSON.parse(
      (await cli(["events", "--limit", "2", "--cursor", cursor, "--json"], { env })).stdout,
    ) as EventList;
    assert.deepEqual(
      next.data.map((event) => event.action),
      ["updated", "created"],
    );
    const paged = JSON.parse((await cli(["events", "--limit", "2", "--all", "--json"], { env })).stdout) as EventList;
    assert.deepEqual(paged.data, page.data);
    assert.equal(paged.next_cursor, null);

    const badAction = await cli(["events", "--action", "deleted"], { env });
    expectExit(badAction, 2, "an unknown --action");
    assert.match(badAction.stderr, /--action must be one of created, imported, upgraded, updated/);
    const badSince = await cli(["events", "--since", "yesterday"], { env });
    expectExit(badSince, 1, "a --since that is no timestamp (400)");
    assert.match(badSince.stderr, /since:/);
    expectExit(await cli(["events", "--key", crypto.randomUUID()], { env }), 4, "events of an unknown key");
    expectExit(await cli(["events"], { env: await home() }), 3, "events when not logged in");
  });
});

describe("the latchkey CLI's usage-limit flags against latchkey", () => {
  /** A `keys get` field/value table as an object. */
  const detail = (run: CliRun) =>
    Object.fromEntries(
      run.stdout
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((line) => line.split(/ {2,}/) as [string, string]),
    ) as Record<string, string>;

  it("creates a key with rate limits and credits, shows them, and spends with verify --cost", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const limits = ["a:2/1m", "b:10/1s", "c:5/1500", "d:100/1h", "e:1000/1d", "f:g:3/10s"];
    const create = await cli(
      [
        "keys",
        "create",
        "--name",
        "limited",
        ...limits.flatMap((limit) => ["--ratelimit", limit]),
        "--credits",
        "3",
        "--refill",
        "100/month",
        "--json",
      ],
      { env },
    );
    expectExit(create, 0, "create with limits");
    const created = JSON.parse(create.stdout) as CreatedApiKey;
    assert.deepEqual(created.ratelimits, [
      { name: "a", limit: 2, duration_ms: 60_000 },
      { name: "b", limit: 10, duration_ms: 1000 },
      { name: "c", limit: 5, duration_ms: 1500 },
      { name: "d", limit: 100, duration_ms: 3_600_000 },
      { name: "e", limit: 1000, duration_ms: 86_400_000 },
      { name: "f:g", limit: 3, duration_ms: 10_000 },
    ]);
    assert.deepEqual(created.credits, {
      remaining: 3,
      refill: { amount: 100, interval: "month" },
      low_threshold: null,
    });

    const get = await cli(["keys", "get", created.id], { env });
    expectExit(get, 0, "get");
    const shown = detail(get);
    assert.equal(shown.ratelimits, "a:2/1m b:10/1s c:5/1500ms d:100/1h e:1000/1d f:g:3/10s");
    assert.equal(shown.credits, "3, refill 100/month");
    const listed = await cli(["keys", "list"], { env });
    assert.match(
      listed.stdout,
      new RegExp(`^${created.id} +limited +\\S+ +\\* +never +a:2/1m b:10/1s .* f:g:3/10s +3 +active$`, "m"),
    );
    const page = JSON.parse((await cli(["keys", "list", "--json"], { env })).stdout) as KeyList;
    assert.deepEqual(page.data[0]?.ratelimits, created.ratelimits);
    assert.deepEqual(page.data[0]?.credits, created.credits);

    // --cost 0 peeks: nothing spent, no rate-limit token taken.
    const peek = await cli(["verify", "--cost", "0", "--json"], { env, stdin: created.key });
    expectExit(peek, 0, "verify --cost 0");
    const peeked = JSON.parse(peek.stdout) as VerifyResult;
    assert.deepEqual("credits" in peeked && peeked.credits, { remaining: 3 });
    assert.equal("ratelimits" in peeked && peeked.ratelimits?.find((limit) => limit.name === "a")?.remaining, 2);
    const spend = await cli(["verify", "--cost", "2", "--json"], { env, stdin: created.key });
    expectExit(spend, 0, "verify --cost 2");
    assert.deepEqual((JSON.parse(spend.stdout) as { credits?: unknown }).credits, { remaining: 1 });
    const tooDear = await cli(["verify", "--cost", "2"], { env, stdin: created.key });
    expectExit(tooDear, 6, "a cost beyond the balance");
    assert.equal(tooDear.stdout, "USAGE_EXCEEDED\n");
    assert.equal(detail(await cli(["keys", "get", created.id], { env })).credits, "1, refill 100/month");

    for (const cost of ["-1", "1.5", "one"]) {
      const bad = await cli(["verify", `--cost=${cost}`], { env, stdin: created.key });
      expectExit(bad, 2, `verify --cost ${cost}`);
      assert.match(bad.stderr, /--cost must be a whole number/);
    }
    expectExit(await cli(["verify"], { env, stdin: created.key }), 0, "the last credit, after the refused ones");
  });

  it("updates, keeps the refill with a new balance, clears limits and credits", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const create = await cli(
      ["keys", "create", "--name", "m", "--ratelimit", "api:5/1s", "--credits", "10", "--refill", "100/day", "--json"],
      { env },
    );
    expectExit(create, 0, "create");
    const { id, key } = JSON.parse(create.stdout) as CreatedApiKey;
    const update = async (...flags: string[]) => {
      const run = await cli(["keys", "update", id, ...flags, "--json"], { env });
      expectExit(run, 0, `update ${flags.join(" ")}`);
      return JSON.parse(run.stdout) as ApiKey;
    };

    const balance = await update("--credits", "50");
    assert.deepEqual(
      balance.credits,
      { remaining: 50, refill: { amount: 100, interval: "day" }, low_threshold: null },
      "refill kept",
    );
    assert.deepEqual(balance.ratelimits, [{ name: "api", limit: 5, duration_ms: 1000 }], "limits untouched");
    assert.deepEqual((await update("--credits", "7", "--refill", "20/month")).credits, {
      remaining: 7,
      refill: { amount: 20, interval: "month" },
      low_threshold: null,
    });
    assert.deepEqual((await update("--credits", "2", "--no-refill")).credits, {
      remaining: 2,
      refill: null,
      low_threshold: null,
    });
    const replaced = await update("--ratelimit", "x:1/1h", "--ratelimit", "y:9/2m");
    assert.deepEqual(replaced.ratelimits, [
      { name: "x", limit: 1, duration_ms: 3_600_000 },
      { name: "y", limit: 9, duration_ms: 120_000 },
    ]);
    assert.deepEqual(replaced.credits, { remaining: 2, refill: null, low_threshold: null }, "credits untouched");
    expectExit(await cli(["verify"], { env, stdin: key }), 0, "the one request of x");
    const limited = await cli(["verify"], { env, stdin: key });
    expectExit(limited, 6, "x has no request left");
    assert.equal(limited.stdout, "RATE_LIMITED\n");

    const cleared = await cli(["keys", "update", id, "--no-ratelimits", "--no-credits"], { env });
    expectExit(cleared, 0, "update --no-ratelimits --no-credits");
    assert.match(cleared.stderr, /Updated \S+: ratelimits, credits\./);
    assert.equal(detail(cleared).ratelimits, "-");
    assert.equal(detail(cleared).credits, "-");
    const view = JSON.parse((await cli(["keys", "get", id, "--json"], { env })).stdout) as ApiKey;
    assert.deepEqual([view.ratelimits, view.credits], [[], null]);
    const free = await cli(["verify", "--json"], { env, stdin: key });
    expectExit(free, 0, "no limits left");
    assert.deepEqual(
      Object.keys(JSON.parse(free.stdout)).filter((field) => ["credits", "ratelimits"].includes(field)),
      [],
    );
  });

  it("refuses malformed usage flags as usage errors, and leaves the rules to latchkey", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("cli")) };
    const created = JSON.parse(
      (await cli(["keys", "create", "--name", "k", "--credits", "5", "--json"], { env })).stdout,
    ) as CreatedApiKey;
    const usage = async (args: string[], message: RegExp) => {
      const run = await cli(args, { env });
      expectExit(run, 2, args.join(" "));
      assert.match(run.stderr, message);
      assert.equal(run.stdout, "");
    };
    for (const bad of ["api", "api:10", "api:10/", ":10/1s", "api:ten/1s", "api:10/1w", "api:10/1.5s", "api:-1/1s"])
      await usage(
        ["keys", "create", "--name", "x", "--ratelimit", bad],
        /--ratelimit must be <name>:<limit>\/<duration>/,
      );
    await usage(["keys", "update", created.id, "--ratelimit", "api:10/10sec"], /--ratelimit must be/);
    for (const bad of ["-1", "1.5", "many"])
      await usage(["keys", "create", "--name", "x", `--credits=${bad}`], /--credits must be a whole number/);
    for (const bad of ["10", "10/week", "x/day", "10/day/month"])
      await usage(["keys", "create", "--name", "x", "--credits", "1", "--refill", bad], /--refill must be/);
    await usage(["keys", "create", "--name", "x", "--refill", "10/day"], /--refill needs --credits/);
    await usage(["keys", "update", created.id, "--refill", "10/day"], /--refill and --no-refill need --credits/);
    await usage(["keys", "update", created.id, "--no-refill"], /need --credits/);
    await usage(
      ["keys", "update", created.id, "--ratelimit", "a:1/1s", "--no-ratelimits"],
      /--ratelimit and --no-ratelimits contradict/,
    );
    await usage(["keys", "update", created.id, "--credits", "1", "--no-credits"], /--no-credits contradicts/);
    await usage(
      ["keys", "update", created.id, "--credits", "1", "--refill", "1/day", "--no-refill"],
      /--refill and --no-refill contradict/,
    );
    await usage(["keys", "create", "--name", "x", "--no-credits"], /Unknown option '--no-credits'/);
    const unchanged = JSON.parse((await cli(["keys", "get", created.id, "--json"], { env })).stdout) as ApiKey;
    assert.deepEqual(
      [unchanged.ratelimits, unchanged.credits],
      [[], { remaining: 5, refill: null, low_threshold: null }],
    );

    const api = async (args: string[], field: RegExp) => {
      const run = await cli(args, { env });
      expectExit(run, 1, args.join(" "));
      assert.match(run.stderr, field);
    };
    await api(["keys", "create", "--name", "x", "--ratelimit", "a:1/999"], /ratelimits\.0\.duration_ms:/);
    await api(["keys", "create", "--name", "x", "--ratelimit", "a:1/2d"], /ratelimits\.0\.duration_ms:/);
    await api(["keys", "create", "--name", "x", "--ratelimit", "a:0/1s"], /ratelimits\.0\.limit:/);
    await api(
      ["keys", "update", created.id, "--ratelimit", "a:1/1s", "--ratelimit", "a:2/1s"],
      /ratelimits\.1\.name: Must be unique/,
    );
    const eleven = Array.from({ length: 11 }, (_, i) => ["--ratelimit", `l${i}:1/1s`]).flat();
    await api(["keys", "create", "--name", "x", ...eleven], /ratelimits:/);
    await api(["keys", "create", "--name", "x", "--credits", "1", "--refill", "0/day"], /credits\.refill\.amount:/);
    expectExit(
      await cli(["keys", "update", crypto.randomUUID(), "--credits", "1"], { env }),
      4,
      "credits of an unknown key",
    );
  });
});
