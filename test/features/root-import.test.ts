/**
 * A root key importing one file for many customers (docs/migrating.md): each item goes to the owner it
 * names, and MAX_KEYS_PER_OWNER is each owner's own, counted with that owner's items in the batch only,
 * all or nothing (src/store/d1-writes.ts, insertNew).
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import {
  call,
  envWith,
  expectProblem,
  tableSnapshot,
  token,
  uniqueSub,
  captureLogs,
  type CapturedLogs,
} from "../helpers";

let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

const QUOTA = 3;
const SMALL = envWith({ MAX_KEYS_PER_OWNER: String(QUOTA), LEGACY_KEY_FORMATS: "opaque:sk_live_" });

async function rootKey(): Promise<string> {
  const response = await call("POST", "/v1/root-keys", {
    auth: await token(uniqueSub("op"), { roles: ["operator"] }),
    body: { name: "migration", owners: ["user:*"] },
    env: SMALL,
  });
  expect(response.status).toBe(201);
  return (await response.json<{ key: string }>()).key;
}

/** An import item of `owner` (a person's id) for a fresh sk_live_ token. */
async function item(owner: string): Promise<Record<string, unknown>> {
  const token = `sk_live_${crypto.randomUUID().replaceAll("-", "")}`;
  return { hash: await sha256Hex(token), name: "imported", format: "opaque", owner: "user", owner_id: owner };
}

const importAs = (root: string, keys: Record<string, unknown>[]) =>
  call("POST", "/v1/keys/import", { auth: root, body: { keys }, env: SMALL });

const owned = async (owner: string) =>
  (
    await env.DB.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE owner_type = 'user' AND owner_id = ?")
      .bind(owner)
      .first<{ n: number }>()
  )?.n;

describe("a root key's import for several owners", () => {
  it("stores each item for its own owner, each owner's quota counting its own items", async () => {
    const root = await rootKey();
    const [a, b] = [uniqueSub("a"), uniqueSub("b")];
    // Four items, two owners: within a quota of 3 each (four rows against one owner's quota would not be).
    const response = await importAs(root, [await item(a), await item(b), await item(a), await item(b)]);
    expect(response.status, await response.clone().text()).toBe(200);
    expect(await response.json()).toMatchObject({ imported: 4, conflicts: 0 });
    expect([await owned(a), await owned(b)]).toEqual([2, 2]);
  });

  it("refuses the whole batch when any owner would go over its quota, whichever comes first", async () => {
    const root = await rootKey();
    const [a, b] = [uniqueSub("a"), uniqueSub("b")];
    expect((await importAs(root, [await item(b), await item(b), await item(b)])).status).toBe(200);
    const before = await tableSnapshot();
    // b is full: one more item for b refuses the batch, though a, named first, has room.
    const problem = await expectProblem(await importAs(root, [await item(a), await item(b)]), 403);
    expect(problem.code).toBe("quota_exceeded");
    expect(await tableSnapshot()).toEqual(before);
    expect([await owned(a), await owned(b)]).toEqual([0, QUOTA]);
  });
});
