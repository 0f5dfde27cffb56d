/**
 * Read-your-writes over D1 read replicas, over HTTP (src/http/bookmark.ts): every response of the
 * management API carries a `Latchkey-Bookmark`, writes and problems included; a write's bookmark,
 * passed to the next read, reads the write; a malformed one is a 400 naming the header that changes
 * nothing; /v1/verify takes none and gives none; a browser may send and read it (CORS).
 *
 * Locally D1 has no replicas, so what the tests can see is the round trip: the bookmarks the local D1
 * answers are real ones (its database's position), so each must be at least as new as the one sent.
 */
import { describe, expect, it } from "vitest";
import { generateKey } from "../../src/keys/format";
import { call, createKey, envWith, expectProblem, tableSnapshot, token, uniqueSub } from "../helpers";

const HEADER = "Latchkey-Bookmark";
const SHAPE = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

/** The response's bookmark, asserted present, well-formed and no older than `since`. */
function bookmarkOf(response: Response, since?: string): string {
  const bookmark = response.headers.get(HEADER);
  expect(bookmark, `${response.status} without ${HEADER}`).toMatch(SHAPE);
  if (since !== undefined) expect(bookmark! >= since, `${bookmark} is older than ${since}`).toBe(true);
  return bookmark!;
}

const withBookmark = (bookmark: string) => ({ [HEADER]: bookmark });

describe("a session and its bookmark, round trip", () => {
  it("a write's bookmark, passed back, reads the write; every response hands on the newest", async () => {
    const jwt = await token(uniqueSub());
    const created = await call("POST", "/v1/keys", { auth: jwt, body: { name: "first" } });
    expect(created.status).toBe(201);
    let bookmark = bookmarkOf(created);
    const { id } = await created.json<{ id: string }>();

    const got = await call("GET", `/v1/keys/${id}`, { auth: jwt, headers: withBookmark(bookmark) });
    expect(got.status).toBe(200);
    bookmark = bookmarkOf(got, bookmark);

    const listed = await call("GET", "/v1/keys", { auth: jwt, headers: withBookmark(bookmark) });
    expect((await listed.json<{ data: { id: string }[] }>()).data.map((k) => k.id)).toContain(id);
    bookmark = bookmarkOf(listed, bookmark);

    const patched = await call("PATCH", `/v1/keys/${id}`, {
      auth: jwt,
      body: { name: "renamed" },
      headers: withBookmark(bookmark),
    });
    expect(patched.status).toBe(200);
    const afterPatch = bookmarkOf(patched, bookmark);
    // The write moved the database on: its bookmark is newer than anything read before it.
    expect(afterPatch > bookmark).toBe(true);
    bookmark = afterPatch;

    const reread = await call("GET", `/v1/keys/${id}`, { auth: jwt, headers: withBookmark(bookmark) });
    expect(await reread.json()).toMatchObject({ name: "renamed" });
    bookmark = bookmarkOf(reread, bookmark);

    const events = await call("GET", `/v1/keys/${id}/events`, { auth: jwt, headers: withBookmark(bookmark) });
    expect((await events.json<{ data: { action: string }[] }>()).data.map((e) => e.action)).toEqual([
      "updated",
      "created",
    ]);
    bookmark = bookmarkOf(events, bookmark);

    const usage = await call("GET", `/v1/keys/${id}/usage`, { auth: jwt, headers: withBookmark(bookmark) });
    expect(usage.status).toBe(200);
    bookmark = bookmarkOf(usage, bookmark);

    const revoked = await call("DELETE", `/v1/keys/${id}`, { auth: jwt, headers: withBookmark(bookmark) });
    expect(revoked.status).toBe(204);
    bookmark = bookmarkOf(revoked, bookmark);
    const gone = await call("GET", `/v1/keys/${id}`, { auth: jwt, headers: withBookmark(bookmark) });
    expect((await gone.json<{ revoked_at: string | null }>()).revoked_at).not.toBeNull();
  });

  it("a read without a bookmark is answered and hands one out; a problem carries the one it was sent", async () => {
    const jwt = await token(uniqueSub());
    const listed = await call("GET", "/v1/keys", { auth: jwt });
    expect(listed.status).toBe(200);
    const bookmark = bookmarkOf(listed);

    const missing = await call("GET", `/v1/keys/${crypto.randomUUID()}`, {
      auth: jwt,
      headers: withBookmark(bookmark),
    });
    await expectProblem(missing, 404, "not_found");
    bookmarkOf(missing, bookmark);

    // Refused before anything is read: the client's own bookmark comes back, so it is never lost.
    const refused = await call("GET", "/v1/keys", { headers: withBookmark(bookmark) });
    expect(refused.status).toBe(401);
    expect(refused.headers.get(HEADER)).toBe(bookmark);
  });

  it("an empty header is no bookmark", async () => {
    const jwt = await token(uniqueSub());
    const listed = await call("GET", "/v1/keys", { auth: jwt, headers: { [HEADER]: "" } });
    expect(listed.status).toBe(200);
    bookmarkOf(listed);
  });
});

describe("a malformed bookmark", () => {
  const malformed = [
    "garbage",
    "first-primary",
    "first-unconstrained",
    "00000085-0000024C-00004C6D-8E61117BF38D7ADB71B934EBBF891683",
    "00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf8916830",
    "x".repeat(2000),
  ];

  it.each(malformed)("%s: a 400 invalid_header naming Latchkey-Bookmark, on reads and writes", async (value) => {
    const jwt = await token(uniqueSub());
    for (const [method, path] of [
      ["GET", "/v1/keys"],
      ["GET", "/v1/events"],
    ] as const) {
      const body = await expectProblem(
        await call(method, path, { auth: jwt, headers: { [HEADER]: value } }),
        400,
        "invalid_header",
      );
      expect(body.errors).toEqual({ [HEADER]: [expect.stringContaining(HEADER)] });
    }
  });

  it("changes nothing: a create or a revoke that carries one stores nothing", async () => {
    const jwt = await token(uniqueSub());
    const { id } = await createKey(jwt);
    const before = await tableSnapshot();
    await expectProblem(
      await call("POST", "/v1/keys", { auth: jwt, body: { name: "never" }, headers: { [HEADER]: "garbage" } }),
      400,
      "invalid_header",
    );
    await expectProblem(
      await call("DELETE", `/v1/keys/${id}`, { auth: jwt, headers: { [HEADER]: "garbage" } }),
      400,
      "invalid_header",
    );
    expect(await tableSnapshot()).toEqual(before);
  });

  it("is judged after the credentials: without them, a 401", async () => {
    const response = await call("GET", "/v1/keys", { headers: { [HEADER]: "garbage" } });
    await expectProblem(response, 401);
  });
});

describe("where no bookmark goes", () => {
  it("/v1/verify (the hot path) takes none and gives none, even when sent a good one", async () => {
    const jwt = await token(uniqueSub());
    const created = await call("POST", "/v1/keys", { auth: jwt, body: { name: "verified" } });
    const bookmark = bookmarkOf(created);
    const { key } = await created.json<{ key: string }>();
    for (const candidate of [key, generateKey("lk")]) {
      const response = await call("POST", "/v1/verify", { body: { key: candidate }, headers: withBookmark(bookmark) });
      expect(response.status).toBe(200);
      expect(response.headers.get(HEADER)).toBeNull();
    }
    // Nor a malformed one: it is not read there.
    const odd = await call("POST", "/v1/verify", { body: { key }, headers: { [HEADER]: "garbage" } });
    expect(odd.status).toBe(200);
  });

  it("with sharding by owner (D1_SHARDS above 1), management requests neither read nor send one", async () => {
    const sharded = envWith({ D1_SHARDS: "2" });
    const jwt = await token(uniqueSub());
    const created = await call("POST", "/v1/keys", { env: sharded, auth: jwt, body: { name: "sharded" } });
    expect(created.status).toBe(201);
    expect(created.headers.get(HEADER)).toBeNull();
    const listed = await call("GET", "/v1/keys", { env: sharded, auth: jwt, headers: { [HEADER]: "garbage" } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get(HEADER)).toBeNull();
  });

  it("routes outside the API carry none", async () => {
    const health = await call("GET", "/healthz", { headers: { [HEADER]: "garbage" } });
    expect(health.status).toBe(200);
    expect(health.headers.get(HEADER)).toBeNull();
  });
});

describe("from a browser (CORS)", () => {
  const DASHBOARD = "https://dash.example.com";
  const corsEnv = envWith({ ALLOWED_ORIGINS: DASHBOARD });

  it("a preflight allows sending it, and a response lets the page read it", async () => {
    const preflight = await call("OPTIONS", "/v1/keys", {
      env: corsEnv,
      headers: {
        Origin: DASHBOARD,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, latchkey-bookmark",
      },
    });
    expect(preflight.status).toBe(204);
    const allowed = preflight.headers.get("access-control-allow-headers")!.toLowerCase().split(", ");
    expect(allowed).toContain("latchkey-bookmark");

    const jwt = await token(uniqueSub());
    const created = await call("POST", "/v1/keys", {
      env: corsEnv,
      auth: jwt,
      body: { name: "from the dashboard" },
      headers: { Origin: DASHBOARD },
    });
    const bookmark = bookmarkOf(created);
    const listed = await call("GET", "/v1/keys", {
      env: corsEnv,
      auth: jwt,
      headers: { Origin: DASHBOARD, [HEADER]: bookmark },
    });
    expect(listed.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(listed.headers.get("access-control-expose-headers")!.split(", ")).toContain(HEADER);
    bookmarkOf(listed, bookmark);
  });
});
