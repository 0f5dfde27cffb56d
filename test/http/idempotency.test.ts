/**
 * Idempotency-Key on POST /v1/keys: a retry never creates a second key, a reused key with another
 * body is refused, keys are scoped per caller and expire after 24 hours, and concurrent retries
 * cannot both create (the claim and the key are one D1 batch under a primary key).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, createKey, expectProblem, tableSnapshot, token, uniqueSub } from "../helpers";

const create = (auth: string, idempotencyKey: string | undefined, body: Record<string, unknown> = { name: "ci" }) =>
  call("POST", "/v1/keys", {
    auth,
    body,
    headers: idempotencyKey === undefined ? {} : { "Idempotency-Key": idempotencyKey },
  });

async function keysOf(sub: string): Promise<number> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE owner_id = ?")
    .bind(sub)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe("Idempotency-Key on POST /v1/keys", () => {
  it("a retry with the same key and body creates nothing and names the first key (409, Location)", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const idem = crypto.randomUUID();
    const first = await create(jwt, idem, { name: "deploy bot", scopes: ["models:invoke"] });
    expect(first.status).toBe(201);
    const created = (await first.json()) as { id: string; key: string };

    const retry = await create(jwt, idem, { name: "deploy bot", scopes: ["models:invoke"] });
    const problem = await expectProblem(retry, 409, "idempotent_replay");
    expect(problem.key_id).toBe(created.id);
    expect(retry.headers.get("location")).toBe(`/v1/keys/${created.id}`);
    expect(JSON.stringify(problem)).not.toContain(created.key);
    expect(await keysOf(sub)).toBe(1);
    // The key the first request made works, and the id lets the client manage it.
    expect((await call("GET", `/v1/keys/${created.id}`, { auth: jwt })).status).toBe(200);
  });

  it("the same key with a different body is refused (422) and changes nothing", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const idem = crypto.randomUUID();
    expect((await create(jwt, idem, { name: "one" })).status).toBe(201);
    const before = await tableSnapshot();
    const reused = await create(jwt, idem, { name: "two" });
    const problem = await expectProblem(reused, 422, "idempotency_key_reused");
    expect(problem.errors).toHaveProperty("Idempotency-Key");
    expect(await tableSnapshot()).toEqual(before);
  });

  it("is scoped per caller: another person, or a key of the same person, may use the same Idempotency-Key", async () => {
    const idem = crypto.randomUUID();
    const alice = await token(uniqueSub("alice"));
    const bob = await token(uniqueSub("bob"));
    expect((await create(alice, idem)).status).toBe(201);
    expect((await create(bob, idem)).status).toBe(201);
    const aliceKey = await createKey(alice, { scopes: ["keys:write"] });
    expect((await create(aliceKey.key, idem)).status).toBe(201);
  });

  it("without the header every request creates a key", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    expect((await create(jwt, undefined)).status).toBe(201);
    expect((await create(jwt, undefined)).status).toBe(201);
    expect(await keysOf(sub)).toBe(2);
  });

  it("is forgotten after 24 hours: the same key then creates a new key", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const idem = crypto.randomUUID();
    expect((await create(jwt, idem)).status).toBe(201);
    await env.DB.prepare("UPDATE idempotency_keys SET created_at = created_at - ? WHERE caller = ?")
      .bind(24 * 60 * 60 * 1000 + 1000, `user:${sub}`)
      .run();
    expect((await create(jwt, idem)).status).toBe(201);
    expect(await keysOf(sub)).toBe(2);
    // ...and the new claim holds again.
    expect((await create(jwt, idem)).status).toBe(409);
  });

  it("concurrent retries create exactly one key; the others are told which", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const idem = crypto.randomUUID();
    const responses = await Promise.all(Array.from({ length: 6 }, () => create(jwt, idem, { name: "race" })));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409]);
    const created = (await responses.find((r) => r.status === 201)!.json()) as { id: string };
    for (const response of responses.filter((r) => r.status === 409)) {
      expect(((await response.json()) as { key_id: string }).key_id).toBe(created.id);
    }
    expect(await keysOf(sub)).toBe(1);
  });

  it("refuses a malformed Idempotency-Key with 400, naming the header, before anything is stored", async () => {
    const jwt = await token(uniqueSub());
    const before = await tableSnapshot();
    // DEL: a byte outside visible ASCII. (A non-ASCII value such as "café" is refused the same way, but
    // building that request in the test makes workerd print a warning about its UTF-8 quirk.)
    for (const bad of ["has space", "x".repeat(256), "caf\x7f"]) {
      const problem = await expectProblem(await create(jwt, bad), 400, "invalid_header");
      expect(Object.keys(problem.errors as object)).toEqual(["Idempotency-Key"]);
    }
    expect(await tableSnapshot()).toEqual(before);
  });
});
