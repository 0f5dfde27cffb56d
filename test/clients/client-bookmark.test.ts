/**
 * @latchkey/client carries read-your-writes for its user (packages/client/src/client.ts): it keeps the
 * newest Latchkey-Bookmark latchkey answered with and sends it with every management call, so a read
 * after a write is served by a replica that has seen the write. Here the client talks to this Worker
 * in-process (its fetch is the Worker's), and every request it sends is recorded.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { LatchkeyClient } from "../../packages/client/src/client";
import worker from "../../src/index";
import { apiRequest } from "../../ui/api";
import { BASE, token, uniqueSub } from "../helpers";

const HEADER = "Latchkey-Bookmark";

/** A client whose fetch is this Worker, recording the bookmark each request carried and each response gave. */
function clientOfWorker(options: { token: string; bookmark?: string }) {
  const sent: { path: string; carried: string | null; answered: string | null }[] = [];
  const fetcher: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const ctx = createExecutionContext();
    const response = await worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, env, ctx);
    await waitOnExecutionContext(ctx);
    sent.push({
      path: `${request.method} ${new URL(request.url).pathname}`,
      carried: request.headers.get(HEADER),
      answered: response.headers.get(HEADER),
    });
    return response;
  };
  return { client: new LatchkeyClient({ baseUrl: BASE, fetch: fetcher, ...options }), sent };
}

describe("the client's bookmark", () => {
  it("is kept from each answer and sent with the next call: a create, then reads that see it", async () => {
    const { client, sent } = clientOfWorker({ token: await token(uniqueSub()) });
    expect(client.bookmark).toBeNull();
    const created = await client.create({ name: "carried" });
    const afterCreate = client.bookmark;
    expect(afterCreate).toBe(sent[0]!.answered);
    expect(afterCreate).not.toBeNull();
    expect(sent[0]!.carried).toBeNull(); // nothing to send yet

    expect((await client.get(created.id)).name).toBe("carried");
    expect((await client.list()).data.map((k) => k.id)).toContain(created.id);
    await client.update(created.id, { name: "renamed" });
    expect((await client.events({ keyId: created.id })).data.map((e) => e.action)).toEqual(["updated", "created"]);

    // Every call after the first carried the bookmark the one before it was answered with.
    for (let i = 1; i < sent.length; i++) expect(sent[i]!.carried, sent[i]!.path).toBe(sent[i - 1]!.answered);
    expect(client.bookmark).toBe(sent.at(-1)!.answered);
    expect(client.bookmark! >= afterCreate!).toBe(true);
  });

  it("is kept from a refusal too, never goes back, and stays off /v1/verify", async () => {
    const { client, sent } = clientOfWorker({ token: await token(uniqueSub()) });
    const created = await client.create({ name: "verified" });
    const held = client.bookmark!;
    await expect(client.get(crypto.randomUUID())).rejects.toMatchObject({ status: 404 });
    expect(sent.at(-1)!.carried).toBe(held);
    expect(client.bookmark! >= held).toBe(true);

    const newest = client.bookmark!;
    await client.verify(created.key);
    expect(sent.at(-1)).toMatchObject({ path: "POST /v1/verify", carried: null, answered: null });
    expect(client.bookmark).toBe(newest);
  });

  it("never goes back: an answer with an older bookmark (calls overlapping) leaves the newer one", async () => {
    const older = "00000001-00000003-00000000-00000000000000000000000000000000";
    const newer = "00000001-00000005-00000000-00000000000000000000000000000000";
    const answers = [newer, older];
    const carried: (string | null)[] = [];
    const client = new LatchkeyClient({
      baseUrl: BASE,
      token: "t",
      fetch: async (input, init) => {
        carried.push(new Request(input, init).headers.get(HEADER));
        const next = answers.shift();
        return Response.json({ data: [], next_cursor: null }, { headers: next ? { [HEADER]: next } : {} });
      },
    });
    await client.list();
    await client.list();
    expect(client.bookmark).toBe(newer);
    await client.list(); // answered with none: kept
    expect(carried).toEqual([null, newer, newer]);
    expect(client.bookmark).toBe(newer);
  });

  it("can be read and given explicitly: another client, or another process, continues from it", async () => {
    const jwt = await token(uniqueSub());
    const first = clientOfWorker({ token: jwt });
    const created = await first.client.create({ name: "handed over" });
    const handed = first.client.bookmark!;

    const second = clientOfWorker({ token: jwt, bookmark: handed });
    expect(second.client.bookmark).toBe(handed);
    expect((await second.client.get(created.id)).id).toBe(created.id);
    expect(second.sent[0]!.carried).toBe(handed);

    // Set to null: the next read goes without one.
    second.client.bookmark = null;
    await second.client.list();
    expect(second.sent.at(-1)!.carried).toBeNull();
    expect(second.client.bookmark).not.toBeNull(); // and the answer gave a new one
  });
});

describe("the <latchkey-keys> component (ui/api.ts)", () => {
  it("sends back the newest bookmark its latchkey answered with, per latchkey", async () => {
    const older = "00000001-00000003-00000000-00000000000000000000000000000000";
    const newer = "00000001-00000005-00000000-00000000000000000000000000000000";
    const answers = [newer, older, null];
    const carried: (string | null)[] = [];
    vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
      carried.push(new Request(input, init).headers.get(HEADER));
      const next = answers.shift();
      return Response.json({ data: [] }, { headers: next ? { [HEADER]: next } : {} });
    });
    try {
      const base = `https://${crypto.randomUUID()}.example`;
      const token = async () => "t";
      for (let i = 0; i < 4; i++) await apiRequest(base, token, "GET", "/v1/keys");
      // Another latchkey gets none of this one's bookmarks.
      await apiRequest(`https://${crypto.randomUUID()}.example`, token, "GET", "/v1/keys");
      expect(carried).toEqual([null, newer, newer, newer, null]);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
