/**
 * Sharding by owner's pure rules (src/keys/shard.ts): an owner's bucket, a key and an id drawn in a
 * bucket, the default place of a bucket and the map's overrides, and feed stamps of several databases.
 */
import { describe, expect, it } from "vitest";
import { isWellFormedKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { UUID_V4 } from "../../src/keys/key-id";
import {
  BUCKETS,
  defaultShard,
  fromStamp,
  hexBucket,
  idInBucket,
  keyInBucket,
  ownerBucket,
  placeBuckets,
  shardStamp,
} from "../../src/keys/shard";

describe("buckets", () => {
  it("an owner's bucket is the first byte of SHA-256 of type:id, so type and id both count", async () => {
    const owner = { type: "user", id: "alice" };
    expect(await ownerBucket(owner)).toBe(parseInt((await sha256Hex("user:alice")).slice(0, 2), 16));
    const buckets = new Set<number>();
    for (let i = 0; i < 64; i++) buckets.add(await ownerBucket({ type: "workspace", id: `org-${i}` }));
    expect(buckets.size).toBeGreaterThan(40); // spread, not one bucket
    expect(await ownerBucket({ type: "workspace", id: "alice" })).toBe(
      parseInt((await sha256Hex("workspace:alice")).slice(0, 2), 16),
    );
  });

  it("draws keys whose hash carries the bucket, well formed, and ids (UUID v4) that carry it too", async () => {
    for (const bucket of [0, 7, 128, 255]) {
      const { key, hash } = await keyInBucket("lk", bucket);
      expect(isWellFormedKey(key, "lk")).toBe(true);
      expect(hash).toBe(await sha256Hex(key));
      expect(hexBucket(hash)).toBe(bucket);
      const id = idInBucket(bucket);
      expect(id).toMatch(UUID_V4);
      expect(hexBucket(id)).toBe(bucket);
    }
  });

  it("spreads buckets over the databases unless the map places them, and refuses a map beyond D1_SHARDS", () => {
    expect([0, 1, 2, 3, 255].map((b) => defaultShard(b, 2))).toEqual([0, 1, 0, 1, 1]);
    const places = placeBuckets([{ bucket: 3, shard: 0, moving_since: 5 }], 2)!;
    expect(places).toHaveLength(BUCKETS);
    expect(places[3]).toEqual({ shard: 0, moving: true });
    expect(places[5]).toEqual({ shard: 1, moving: false });
    expect(places[4]).toEqual({ shard: 0, moving: false });
    expect(placeBuckets([{ bucket: 3, shard: 2, moving_since: null }], 2)).toBeNull();
  });

  it("stamps feed positions with their database, in order within one database", () => {
    expect(fromStamp(shardStamp(1234, 1))).toEqual({ shard: 1, seq: 1234 });
    expect(fromStamp(shardStamp(0, 0))).toEqual({ shard: 0, seq: 0 });
    expect(shardStamp(10, 1)).toBeLessThan(shardStamp(11, 1));
    expect(shardStamp(10, 255)).toBeLessThan(shardStamp(11, 0));
  });
});
