/**
 * The latchkey CLI end to end against a running latchkey: login -> create -> list -> get -> verify
 * -> revoke -> verify (invalid); the config file's permissions; --json output; exit codes; and the
 * new key printed exactly once, on stdout, by create alone.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ApiKey, CreatedApiKey, KeyList, VerifyResult } from "@latchkey/client";
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
    assert.match(header ?? "", /^ID +NAME +START +SCOPES +EXPIRES +STATUS$/);
    assert.match(row ?? "", new RegExp(`^${listed.id} +cli key +${listed.start} +models:invoke +never +active$`));
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
    assert.match(missing.stderr, /Not Found/);

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
