/**
 * An HMAC-imported key upgraded by another isolate (src/service/hmac-upgrade.ts): an isolate that
 * found it by its HMAC digest, and remembered the SHA-256 of its token as unknown, keeps verifying it
 * after the upgrade moved it (its copy under the digest dropped by the feed, its negative cache read
 * again); and once the key is revoked, no copy under the old digest answers for it anywhere.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import type { Env } from "../../src/env";
import { sha256Hex } from "../../src/keys/hash";
import { hmacSha256Hex } from "../../src/keys/legacy-digest";
import { IsolateCache, Verifier } from "../../src/service/verify";
import { KvRecordCache } from "../../src/store/cache";
import { D1KeyStore } from "../../src/store/d1";
import { call, captureLogs, envWith, token, uniqueSub, type CapturedLogs } from "../helpers";

let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

const PEPPER = "pepper-for-sync-tests-51e0";
const HMAC = envWith({
  LEGACY_KEY_FORMATS: "hmac-sha256:opaque:hk_",
  LEGACY_HMAC_PEPPER: PEPPER,
  IMPORT_ALLOWED: "personal",
  REVOCATION_SYNC_SECONDS: "0.2",
});

/** A D1 store whose upgrades another isolate always wins (nothing written here). */
class LosingStore extends D1KeyStore {
  override async upgradeHmacDigest(): Promise<number | null> {
    return null;
  }
}

/** An isolate of its own: memory, negative cache and feed position. */
function isolate(testEnv: Env, store = new D1KeyStore(testEnv.DB)) {
  const local = new IsolateCache();
  const deferred: Promise<unknown>[] = [];
  const verifier = new Verifier(
    {
      store,
      cache: new KvRecordCache(testEnv.KEY_CACHE),
      config: loadConfig(testEnv),
      defer: (work) => void deferred.push(work),
    },
    local,
  );
  return {
    local,
    verifier,
    async code(key: string): Promise<string> {
      const { code } = await verifier.verify(key);
      while (deferred.length > 0) await Promise.allSettled(deferred.splice(0));
      return code;
    },
  };
}

async function importToken(): Promise<{ id: string; key: string; digest: string; jwt: string }> {
  const jwt = await token(uniqueSub());
  const key = `hk_${crypto.randomUUID().replaceAll("-", "")}`;
  const digest = await hmacSha256Hex(PEPPER, key);
  const response = await call("POST", "/v1/keys/import", {
    auth: jwt,
    body: { keys: [{ hash: digest, name: "synced", format: "hmac-sha256" }] },
    env: HMAC,
  });
  expect(response.status).toBe(200);
  const { results } = await response.json<{ results: { id: string }[] }>();
  return { id: results[0]!.id, key, digest, jwt };
}

describe("an HMAC key upgraded by another isolate", () => {
  it("keeps verifying where its SHA-256 was remembered as unknown, once the feed dropped the copy under its digest", async () => {
    const { id, key, digest } = await importToken();
    const sha = await sha256Hex(key);
    const b = isolate(HMAC, new LosingStore(HMAC.DB));
    expect(await b.code(key)).toBe("VALID");
    // B looked the SHA-256 up first (unknown then) and holds the key under its digest.
    expect(b.local.unknown.get(sha, Date.now())).toBe(true);
    expect(b.local.records.get(digest, Date.now())?.record.id).toBe(id);

    const a = isolate(HMAC);
    expect(await a.code(key)).toBe("VALID");
    expect(
      (await env.DB.prepare("SELECT hash FROM api_keys WHERE id = ?").bind(id).first<{ hash: string }>())?.hash,
    ).toBe(sha);

    // B learns of the move from the feed: its copy under the digest goes, its negative cache is read again.
    await b.verifier.syncFeed();
    expect(b.local.records.get(digest, Date.now())).toBeUndefined();
    expect(await b.code(key)).toBe("VALID");
    expect(b.local.records.get(sha, Date.now())?.record).toMatchObject({ id, hash: sha, legacyHash: digest });
  });

  it("revoked after its upgrade, it is refused by every isolate, whatever it held under the old digest", async () => {
    const { id, key, jwt } = await importToken();
    const b = isolate(HMAC, new LosingStore(HMAC.DB));
    expect(await b.code(key)).toBe("VALID"); // B holds it under its digest
    const a = isolate(HMAC);
    expect(await a.code(key)).toBe("VALID"); // A upgrades it
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt, env: HMAC })).status).toBe(204);

    await b.verifier.syncFeed();
    expect(await b.code(key)).toBe("REVOKED");
    await a.verifier.syncFeed();
    expect(await a.code(key)).toBe("REVOKED");
    expect(await isolate(HMAC).code(key)).toBe("REVOKED");
  });
});
