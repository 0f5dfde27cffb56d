/**
 * Leaked-key reports over HTTP: GitHub's secret scanning endpoint with a locally generated P-256 key
 * pair served by a stubbed keys URL (good, bad and missing signatures, unknown identifiers, malformed
 * bodies), what a report does to a key (revoked or disabled at once, here and in KV, one `leaked`
 * event, idempotent), a thousand tokens in a bounded number of D1 calls, and POST /v1/leaks.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { generateKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { call, captureLogs, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";
import { newSigner, reportToGithubEndpoint, stubKeysUrl } from "../leak-helpers";
import type { Env } from "../../src/env";
import { D1LeakStore } from "../../src/store/leaks";

afterEach(() => {
  vi.restoreAllMocks();
});

async function verdict(key: string, testEnv: Env = env): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key }, env: testEnv });
  return ((await response.json()) as { code: string }).code;
}

async function eventsOf(auth: string, id: string): Promise<{ action: string; actor: string; changes: any }[]> {
  const response = await call("GET", `/v1/keys/${id}/events`, { auth });
  expect(response.status).toBe(200);
  return ((await response.json()) as { data: { action: string; actor: string; changes: unknown }[] }).data;
}

const leakedEvents = async (auth: string, id: string) =>
  (await eventsOf(auth, id)).filter((event) => event.action === "leaked");

/** A person and one of their keys, warm in this isolate's memory and in KV. */
async function ownedKey(testEnv: Env) {
  const auth = await token(uniqueSub());
  const created = await createKey(auth);
  expect(await verdict(created.key, testEnv)).toBe("VALID");
  return { auth, ...created };
}

describe("POST /v1/leaks/github", () => {
  it("revokes a reported key at once, here and in KV, with one `leaked` event holding no secret", async () => {
    const signer = await newSigner();
    const { testEnv } = stubKeysUrl([signer]);
    const { auth, id, key } = await ownedKey(testEnv);
    const hash = await sha256Hex(key);
    await vi.waitFor(async () => expect(await env.KEY_CACHE.get(`key:v3:${hash}`)).not.toBeNull());

    const url = "https://github.com/octo/repo/blob/abc/config.js";
    const response = await reportToGithubEndpoint(testEnv, signer, [{ token: key, url, source: "commit" }]);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual([
      { token_hash: hash, token_type: "latchkey_api_key", label: "true_positive" },
    ]);

    expect(await verdict(key, testEnv)).toBe("REVOKED");
    expect(await env.KEY_CACHE.get(`key:v3:${hash}`)).toBeNull();
    const events = await leakedEvents(auth, id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actor: "github",
      changes: {
        revoked_at: { old: null, new: expect.any(String) },
        leak: { old: null, new: { reporter: "github", source: "commit", url } },
      },
    });
    const stored = JSON.stringify(await env.DB.prepare("SELECT * FROM key_events WHERE key_id = ?").bind(id).all());
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(hash);
    // The revocation is the same as any: the key's view says revoked.
    const view = (await (await call("GET", `/v1/keys/${id}`, { auth })).json()) as { revoked_at: string | null };
    expect(view.revoked_at).not.toBeNull();
  });

  it("refuses a bad signature with 401 and changes nothing", async () => {
    const signer = await newSigner();
    const impostor = await newSigner(signer.identifier);
    const { testEnv } = stubKeysUrl([signer]);
    const { auth, id, key } = await ownedKey(testEnv);

    const body = JSON.stringify([{ token: key, type: "latchkey_api_key", url: "https://x.test/", source: "content" }]);
    const tampered = JSON.stringify([
      { token: key, type: "latchkey_api_key", url: "https://y.test/", source: "content" },
    ]);
    const cases: Record<string, string>[] = [
      // Signed by another key under GitHub's identifier.
      { "Github-Public-Key-Identifier": signer.identifier, "Github-Public-Key-Signature": await impostor.sign(body) },
      // GitHub's signature of another body.
      { "Github-Public-Key-Identifier": signer.identifier, "Github-Public-Key-Signature": await signer.sign(tampered) },
      // Not base64 DER.
      { "Github-Public-Key-Identifier": signer.identifier, "Github-Public-Key-Signature": "not-a-signature" },
      { "Github-Public-Key-Identifier": signer.identifier, "Github-Public-Key-Signature": btoa("garbage bytes") },
    ];
    for (const headers of cases) {
      const response = await reportToGithubEndpoint(testEnv, signer, body, {
        "content-type": "application/json",
        ...headers,
      });
      await expectProblem(response, 401, "signature_invalid");
    }
    expect(await verdict(key, testEnv)).toBe("VALID");
    expect(await leakedEvents(auth, id)).toEqual([]);
  });

  it("refuses a report without either header (401), whatever its body", async () => {
    const signer = await newSigner();
    const { testEnv, state } = stubKeysUrl([signer]);
    const { key } = await ownedKey(testEnv);
    const body = JSON.stringify([{ token: key, type: "latchkey_api_key" }]);
    const signature = await signer.sign(body);
    const headerSets: Record<string, string>[] = [
      {},
      { "Github-Public-Key-Identifier": signer.identifier },
      { "Github-Public-Key-Signature": signature },
      { "Github-Public-Key-Identifier": "", "Github-Public-Key-Signature": signature },
    ];
    for (const headers of headerSets) {
      const response = await reportToGithubEndpoint(testEnv, signer, body, {
        "content-type": "application/json",
        ...headers,
      });
      await expectProblem(response, 401, "signature_invalid");
    }
    // An unsigned body that is not even JSON is refused for its signature, not parsed.
    await expectProblem(
      await reportToGithubEndpoint(testEnv, signer, "{nope", { "content-type": "application/json" }),
      401,
      "signature_invalid",
    );
    expect(state.fetches).toBe(0);
    expect(await verdict(key, testEnv)).toBe("VALID");
  });

  it("refuses an identifier GitHub does not publish, fetching the list at most once per cooldown", async () => {
    const signer = await newSigner();
    const stranger = await newSigner();
    const { testEnv, state } = stubKeysUrl([signer]);
    const { key } = await ownedKey(testEnv);
    for (let i = 0; i < 3; i++) {
      await expectProblem(await reportToGithubEndpoint(testEnv, stranger, [{ token: key }]), 401, "signature_invalid");
    }
    expect(state.fetches).toBe(1);
    // A known identifier is served from the keys already held.
    expect((await reportToGithubEndpoint(testEnv, signer, [{ token: generateKey("lk") }])).status).toBe(200);
    expect(state.fetches).toBe(1);
    expect(await verdict(key, testEnv)).toBe("VALID");
  });

  it("answers 503 when GitHub's keys cannot be fetched, and changes nothing", async () => {
    const signer = await newSigner();
    const { testEnv, state } = stubKeysUrl([signer]);
    state.failing = true;
    const { key } = await ownedKey(testEnv);
    const logs = captureLogs();
    try {
      const response = await reportToGithubEndpoint(testEnv, signer, [{ token: key }]);
      await expectProblem(response, 503, "signing_keys_unavailable");
      expect(response.headers.get("Retry-After")).not.toBeNull();
    } finally {
      logs.restore();
    }
    expect(logs.events("github_keys_fetch_failed")).toHaveLength(1);
    expect(logs.events("signing_keys_unavailable")).toHaveLength(1);
    expect(await verdict(key, testEnv)).toBe("VALID");
  });

  it("refuses a signed body that is not JSON (400) or not a report (422)", async () => {
    const signer = await newSigner();
    const { testEnv } = stubKeysUrl([signer]);
    await expectProblem(await reportToGithubEndpoint(testEnv, signer, "[{"), 400, "malformed_body");
    for (const body of ['{"token":"x"}', '[{"type":"t"}]', '[{"token":1,"type":"t"}]', "[1]"]) {
      await expectProblem(await reportToGithubEndpoint(testEnv, signer, body), 422, "validation_failed");
    }
    // An empty report is a valid one.
    const empty = await reportToGithubEndpoint(testEnv, signer, "[]");
    expect(empty.status).toBe(200);
    expect(await empty.json()).toEqual([]);
  });

  it("refuses a body over 1 MB (413) before judging its signature, and changes nothing", async () => {
    const signer = await newSigner();
    const { testEnv, state } = stubKeysUrl([signer]);
    const { key } = await ownedKey(testEnv);
    const body = JSON.stringify([
      { token: key, type: "latchkey_api_key", url: `https://x.test/${"a".repeat(1024 * 1024)}` },
    ]);
    await expectProblem(await reportToGithubEndpoint(testEnv, signer, body), 413, "body_too_large");
    expect(state.fetches).toBe(0);
    expect(await verdict(key, testEnv)).toBe("VALID");
  });

  it("labels unknown and malformed tokens false_positive, the malformed ones without touching D1", async () => {
    const signer = await newSigner();
    const { testEnv } = stubKeysUrl([signer]);
    const unknown = generateKey("lk");
    const badChecksum = unknown.slice(0, -1) + (unknown.endsWith("A") ? "B" : "A");
    const tokens = [unknown, badChecksum, "lk_short", generateKey("other"), "ghp_notours"];
    const response = await reportToGithubEndpoint(
      testEnv,
      signer,
      tokens.map((t) => ({ token: t })),
    );
    expect(response.status).toBe(200);
    const expected = await Promise.all(
      tokens.map(async (t) => ({
        token_hash: await sha256Hex(t),
        token_type: "latchkey_api_key",
        label: "false_positive",
      })),
    );
    expect(await response.json()).toEqual(expected);

    // Only malformed tokens: no D1 call at all.
    const prepared: string[] = [];
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare" || prop === "batch") prepared.push(String(prop));
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const counting = { ...testEnv, DB: db } as Env;
    const malformed = await reportToGithubEndpoint(counting, signer, [{ token: badChecksum }, { token: "lk_short" }]);
    expect(malformed.status).toBe(200);
    expect(prepared).toEqual([]);
  });

  it("acts once on a key reported twice, in one report or two, and never on a key already revoked", async () => {
    const signer = await newSigner();
    const { testEnv } = stubKeysUrl([signer]);
    const { auth, id, key } = await ownedKey(testEnv);
    const twice = await reportToGithubEndpoint(testEnv, signer, [{ token: key }, { token: key, source: "npm" }]);
    const labels = ((await twice.json()) as { label: string }[]).map((entry) => entry.label);
    expect(labels).toEqual(["true_positive", "true_positive"]);
    const again = await reportToGithubEndpoint(testEnv, signer, [{ token: key }]);
    expect(((await again.json()) as { label: string }[])[0]?.label).toBe("true_positive");
    expect(await leakedEvents(auth, id)).toHaveLength(1);

    // Revoked by its owner first: still ours, left alone.
    const other = await createKey(auth);
    expect((await call("DELETE", `/v1/keys/${other.id}`, { auth })).status).toBe(204);
    const revoked = await reportToGithubEndpoint(testEnv, signer, [{ token: other.key }]);
    expect(((await revoked.json()) as { label: string }[])[0]?.label).toBe("true_positive");
    const events = await eventsOf(auth, other.id);
    expect(events.map((event) => event.action)).toEqual(["revoked", "created"]);
  });

  it("with LEAK_ACTION=disable, disables the key (once) and its owner may enable it again", async () => {
    const signer = await newSigner();
    const { testEnv } = stubKeysUrl([signer], { LEAK_ACTION: "disable" });
    const { auth, id, key } = await ownedKey(testEnv);
    const hash = await sha256Hex(key);
    await vi.waitFor(async () => expect(await env.KEY_CACHE.get(`key:v3:${hash}`)).not.toBeNull());

    const response = await reportToGithubEndpoint(testEnv, signer, [{ token: key }]);
    expect(((await response.json()) as { label: string }[])[0]?.label).toBe("true_positive");
    expect(await verdict(key, testEnv)).toBe("DISABLED");
    expect(await env.KEY_CACHE.get(`key:v3:${hash}`)).toBeNull();
    await reportToGithubEndpoint(testEnv, signer, [{ token: key }]);
    const events = await leakedEvents(auth, id);
    expect(events).toHaveLength(1);
    expect(events[0]?.changes).toMatchObject({ enabled: { old: true, new: false } });
    expect(events[0]?.changes.revoked_at).toBeUndefined();

    const enabled = await call("PATCH", `/v1/keys/${id}`, { auth, body: { enabled: true } });
    expect(enabled.status).toBe(200);
    expect(await verdict(key, testEnv)).toBe("VALID");
  });

  it("judges a thousand tokens with a bounded number of D1 calls", async () => {
    const signer = await newSigner();
    const { testEnv } = stubKeysUrl([signer]);
    const auth = await token(uniqueSub());
    const ours = await Promise.all(Array.from({ length: 5 }, () => createKey(auth)));
    const tokens = [...ours.map((k) => k.key), ...Array.from({ length: 995 }, () => generateKey("lk"))];

    const calls: string[] = [];
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare" || prop === "batch") calls.push(String(prop));
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const counting = { ...testEnv, DB: db } as Env;
    const response = await reportToGithubEndpoint(
      counting,
      signer,
      tokens.map((t) => ({ token: t })),
    );
    expect(response.status).toBe(200);
    const labels = ((await response.json()) as { label: string }[]).map((entry) => entry.label);
    expect(labels.slice(0, 5)).toEqual(Array(5).fill("true_positive"));
    expect(labels.slice(5).every((label) => label === "false_positive")).toBe(true);
    // One lookup, one batch of three statements (events, update, feed position).
    expect(calls.filter((c) => c === "batch")).toHaveLength(1);
    expect(calls.filter((c) => c === "prepare").length).toBeLessThanOrEqual(4);
    for (const created of ours) expect(await verdict(created.key, testEnv)).toBe("REVOKED");
  });
});

describe("the leak's write, racing reports", () => {
  // The service skips keys it read as already revoked (or disabled); two reports racing both read the
  // key live, so the write itself must change each key, and write its event, once.
  const origin = { actor: "github", ip: null, userAgent: null };
  const changes = { leak: { old: null, new: { reporter: "github", source: "content", url: null } } };

  for (const action of ["revoke", "disable"] as const) {
    it(`${action}s a key once when two reports both read it live`, async () => {
      const auth = await token(uniqueSub());
      const { id, key } = await createKey(auth);
      const hash = await sha256Hex(key);
      const store = new D1LeakStore(env.DB);
      const first = await store.markLeaked(action, [{ hash, changes }], Date.now(), origin);
      const second = await store.markLeaked(action, [{ hash, changes }], Date.now() + 1, origin);
      expect(first.records.map((r) => r.id)).toEqual([id]);
      expect(second.records).toEqual([]);
      expect(await leakedEvents(auth, id)).toHaveLength(1);
    });
  }
});

describe("POST /v1/leaks", () => {
  it("lets an operator report keys of any owner, recording source and url", async () => {
    const { auth, id, key } = await ownedKey(env);
    const operator = await token(uniqueSub("op"), { roles: ["operator"] });
    const unknown = generateKey("lk");
    const response = await call("POST", "/v1/leaks", {
      auth: operator,
      body: { keys: [key, unknown, "not a key", key], source: "trufflehog", url: "https://gitlab.example/x" },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      data: [
        { token_hash: await sha256Hex(key), label: "true_positive", key_id: id, action: "revoked" },
        { token_hash: await sha256Hex(unknown), label: "false_positive", key_id: null, action: null },
        { token_hash: await sha256Hex("not a key"), label: "false_positive", key_id: null, action: null },
        { token_hash: await sha256Hex(key), label: "true_positive", key_id: id, action: null },
      ],
    });
    expect(await verdict(key)).toBe("REVOKED");
    const events = await leakedEvents(auth, id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actor: expect.stringMatching(/^user:op-/),
      changes: { leak: { new: { reporter: "report", source: "trufflehog", url: "https://gitlab.example/x" } } },
    });
    // Reported again: still ours, nothing done.
    const again = await call("POST", "/v1/leaks", { auth: operator, body: { keys: [key] } });
    expect(((await again.json()) as { data: { action: unknown }[] }).data[0]?.action).toBeNull();
  });

  it("lets a root key with keys:write report the keys of the owners it covers, and no others", async () => {
    const { auth, id, key } = await ownedKey(env);
    const operator = await token(uniqueSub("op"), { roles: ["operator"] });
    const root = async (body: Record<string, unknown>) => {
      const made = await call("POST", "/v1/root-keys", { auth: operator, body: { name: "scanner", ...body } });
      expect(made.status).toBe(201);
      return await made.json<{ id: string; key: string }>();
    };
    const workspaces = await root({ owners: ["workspace:*"] });
    const outside = await call("POST", "/v1/leaks", { auth: workspaces.key, body: { keys: [key] } });
    expect(outside.status).toBe(200);
    expect(((await outside.json()) as { data: { label: string }[] }).data[0]?.label).toBe("false_positive");
    expect(await verdict(key)).toBe("VALID");
    const readOnly = await root({ scopes: ["keys:read"] });
    await expectProblem(await call("POST", "/v1/leaks", { auth: readOnly.key, body: { keys: [key] } }), 403);
    expect(await verdict(key)).toBe("VALID");

    const users = await root({ owners: ["user:*"] });
    const reported = await call("POST", "/v1/leaks", { auth: users.key, body: { keys: [key] } });
    expect(((await reported.json()) as { data: { action: string }[] }).data[0]?.action).toBe("revoked");
    expect(await verdict(key)).toBe("REVOKED");
    const events = await leakedEvents(auth, id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: `root:${users.id}` });
  });

  it("refuses people who are not operators, and API keys, before looking anything up", async () => {
    const { auth, id, key } = await ownedKey(env);
    const withWrite = await createKey(auth, { scopes: ["keys:write", "keys:read"] });
    for (const caller of [auth, await token(uniqueSub(), { org: "acme" }), withWrite.key]) {
      await expectProblem(await call("POST", "/v1/leaks", { auth: caller, body: { keys: [key] } }), 403);
    }
    expect(await verdict(key)).toBe("VALID");
    expect(await leakedEvents(auth, id)).toEqual([]);
  });

  it("validates the body", async () => {
    const operator = await token(uniqueSub("op"), { roles: ["operator"] });
    for (const body of [{}, { keys: [] }, { keys: "lk_x" }, { keys: ["x"], extra: 1 }, { keys: ["x"], source: "" }]) {
      await expectProblem(await call("POST", "/v1/leaks", { auth: operator, body }), 422, "validation_failed");
    }
  });

  it("answers 401 without credentials", async () => {
    await expectProblem(await call("POST", "/v1/leaks", { body: { keys: ["x"] } }), 401);
  });
});

describe("KeyService.reportLeaks", () => {
  it("revokes any owner's key for a trusted Worker, with `service` as the event's actor", async () => {
    const { auth, id, key } = await ownedKey(env);
    const result = await exports.KeyService.reportLeaks({ keys: [key, "nope"], source: "scanner" });
    expect(result.data.map((entry) => [entry.label, entry.action])).toEqual([
      ["true_positive", "revoked"],
      ["false_positive", null],
    ]);
    expect(await verdict(key)).toBe("REVOKED");
    const events = await leakedEvents(auth, id);
    expect(events).toMatchObject([{ actor: "service", changes: { leak: { new: { source: "scanner" } } } }]);
  });
});

describe("configuration", () => {
  it("reads LEAK_ACTION and GITHUB_SECRET_SCANNING_KEYS_URL, falling back on bad values", async () => {
    const { loadConfig } = await import("../../src/config");
    const logs = captureLogs();
    const read = (vars: Partial<Env>) => loadConfig(envWith(vars)).leaks;
    expect(read({}).action).toBe("revoke");
    expect(read({ LEAK_ACTION: "disable" }).action).toBe("disable");
    expect(read({ LEAK_ACTION: "delete" }).action).toBe("revoke");
    expect(read({}).githubKeysUrl.href).toBe("https://api.github.com/meta/public_keys/secret_scanning");
    expect(read({ GITHUB_SECRET_SCANNING_KEYS_URL: "http://evil.example/keys" }).githubKeysUrl.hostname).toBe(
      "api.github.com",
    );
    expect(read({ GITHUB_SECRET_SCANNING_KEYS_URL: "http://127.0.0.1:8875/keys" }).githubKeysUrl.port).toBe("8875");
    logs.restore();
    const problems = logs.events("configuration_invalid").map((line) => String(line.problem));
    expect(problems.some((p) => p.startsWith("LEAK_ACTION"))).toBe(true);
    expect(problems.some((p) => p.startsWith("GITHUB_SECRET_SCANNING_KEYS_URL"))).toBe(true);
  });
});
