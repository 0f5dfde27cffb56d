/**
 * Keyset pagination of GET /v1/keys: following next_cursor visits every key exactly once, newest
 * first, even when keys share a creation millisecond or are created and revoked mid-walk.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { type CreatedKey, call, createKey, token, uniqueSub } from "../helpers";

interface Page {
  data: { id: string; created_at: string; revoked_at: string | null; key?: unknown; hash?: unknown }[];
  next_cursor: string | null;
}

/** Follows next_cursor from the first page to the last; `between` runs after each page. */
async function walk(auth: string, query: string, between?: (pageIndex: number) => Promise<void>): Promise<Page[]> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams(query);
    if (cursor !== null) params.set("cursor", cursor);
    const response = await call("GET", `/v1/keys?${params}`, { auth });
    expect(response.status).toBe(200);
    const page = (await response.json()) as Page;
    pages.push(page);
    cursor = page.next_cursor;
    await between?.(pages.length - 1);
    expect(pages.length).toBeLessThan(100);
  } while (cursor !== null);
  return pages;
}

const ids = (pages: Page[]) => pages.flatMap((page) => page.data.map((key) => key.id));

/** Newest first: created_at descending, then id descending for keys created in the same millisecond. */
function newestFirst(keys: { id: string; created_at: string }[]): string[] {
  return [...keys]
    .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : -1))
    .map((key) => key.id);
}

async function createMany(jwt: string, count: number): Promise<CreatedKey[]> {
  const keys: CreatedKey[] = [];
  for (let i = 0; i < count; i++) keys.push(await createKey(jwt, { name: `key ${i}` }));
  return keys;
}

describe("GET /v1/keys pagination", () => {
  let jwt: string;
  let keys: CreatedKey[];

  beforeAll(async () => {
    jwt = await token(uniqueSub());
    keys = await createMany(jwt, 25);
  });

  it("walks 25 keys with limit=7 exactly once each, newest first", async () => {
    const pages = await walk(jwt, "limit=7");
    expect(pages.map((page) => page.data.length)).toEqual([7, 7, 7, 4]);
    expect(pages.slice(0, -1).every((page) => typeof page.next_cursor === "string")).toBe(true);
    expect(ids(pages)).toEqual(newestFirst(keys as unknown as { id: string; created_at: string }[]));
    expect(new Set(ids(pages)).size).toBe(25);
    for (const key of pages.flatMap((page) => page.data)) {
      expect(key).not.toHaveProperty("key");
      expect(key).not.toHaveProperty("hash");
    }
  });

  it("ends without an empty page when the last page is full, and defaults to 20", async () => {
    expect((await walk(jwt, "limit=5")).map((page) => page.data.length)).toEqual([5, 5, 5, 5, 5]);
    expect((await walk(jwt, "limit=25")).map((page) => page.data.length)).toEqual([25]);
    expect((await walk(jwt, "limit=100")).map((page) => page.data.length)).toEqual([25]);
    expect((await walk(jwt, "")).map((page) => page.data.length)).toEqual([20, 5]);
  });

  it("visits every key once when all share one creation millisecond", async () => {
    const tied = await token(uniqueSub());
    const created = await createMany(tied, 12);
    const owner = String(created[0]!.owner_id);
    await env.DB.prepare("UPDATE api_keys SET created_at = ? WHERE owner_id = ?").bind(Date.now(), owner).run();
    const walked = ids(await walk(tied, "limit=5"));
    expect(walked).toEqual(
      created
        .map((key) => key.id)
        .sort()
        .reverse(),
    );
  });

  it("is stable while keys are created and revoked mid-walk", async () => {
    const sub = await token(uniqueSub());
    const original = await createMany(sub, 10);
    const seen = new Set<string>();
    const added: string[] = [];
    const pages = await walk(sub, "limit=3", async (index) => {
      if (index === 0) added.push((await createKey(sub, { name: "newcomer" })).id);
      if (index === 1) {
        const last = original[0]!; // the oldest: not yet visited
        expect((await call("DELETE", `/v1/keys/${last.id}`, { auth: sub })).status).toBe(204);
      }
    });
    for (const id of ids(pages)) {
      expect(seen.has(id)).toBe(false);
      seen.add(id);
    }
    const expected = original.slice(1).map((key) => key.id);
    expect([...seen].sort()).toEqual(expected.sort());
    expect(seen.has(added[0]!)).toBe(false);
  });

  it("excludes revoked keys by default and includes them with include_revoked=true", async () => {
    const sub = await token(uniqueSub());
    const created = await createMany(sub, 15);
    const revoked = created.filter((_, i) => i % 4 === 0).map((key) => key.id);
    for (const id of revoked) expect((await call("DELETE", `/v1/keys/${id}`, { auth: sub })).status).toBe(204);
    const all = newestFirst(created as unknown as { id: string; created_at: string }[]);

    const active = await walk(sub, "limit=4");
    expect(ids(active)).toEqual(all.filter((id) => !revoked.includes(id)));
    expect(active.flatMap((page) => page.data).every((key) => key.revoked_at === null)).toBe(true);

    for (const flag of ["true", "1"]) {
      const everything = await walk(sub, `limit=4&include_revoked=${flag}`);
      expect(ids(everything)).toEqual(all);
      const marked = everything.flatMap((page) => page.data).filter((key) => key.revoked_at !== null);
      expect(marked.map((key) => key.id).sort()).toEqual([...revoked].sort());
    }
    expect(ids(await walk(sub, "limit=4&include_revoked=false"))).toEqual(ids(active));
  });

  it("shows another owner none of these keys, whatever the cursor", async () => {
    const [first] = await walk(jwt, "limit=7");
    const stranger = await token(uniqueSub());
    expect(ids(await walk(stranger, "limit=7"))).toEqual([]);
    const response = await call("GET", `/v1/keys?limit=7&cursor=${first!.next_cursor}`, { auth: stranger });
    expect(await response.json()).toEqual({ data: [], next_cursor: null });
  });
});
