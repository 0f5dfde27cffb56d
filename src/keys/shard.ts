/**
 * Sharding by owner (docs/scaling.md), the pure rules: 256 fixed buckets, an owner's bucket (the first
 * byte of SHA-256 of `type:id`), where a bucket lives by default, how a key and a key id carry their
 * owner's bucket, and the feed positions of several databases told apart in one number.
 *
 * A key made in sharded mode is drawn until the first byte of its SHA-256 is its owner's bucket (256
 * draws on average, on create only; the key keeps 248 bits of entropy), so verification, which already
 * computes that hash, knows the database from it. Its id's first byte (two hex digits) is the bucket
 * too. Keys made before sharding and imported keys carry no bucket: they are found through the
 * directory of homes (store/shards.ts). Pure apart from WebCrypto.
 */
import { generateKey } from "./format";
import { sha256Hex } from "./hash";

export const BUCKETS = 256;
/** At most this many databases (more than buckets would leave some empty). */
export const MAX_SHARDS = BUCKETS;
/** Draws before a key in the bucket is given up on: missing 16,384 times has odds of 1 in 10^27. */
const MAX_DRAWS = 16_384;

/** The bucket of an owner: the first byte of SHA-256(`type:id`). */
export async function ownerBucket(owner: { readonly type: string; readonly id: string }): Promise<number> {
  return hexBucket(await sha256Hex(`${owner.type}:${owner.id}`));
}

/** The bucket a hex SHA-256 (a key's hash) or a key id carries: its first byte. */
export function hexBucket(hex: string): number {
  return parseInt(hex.slice(0, 2), 16);
}

/** Where a bucket lives when the map says nothing of it: spread evenly over `shards` databases. */
export function defaultShard(bucket: number, shards: number): number {
  return bucket % shards;
}

/** A fresh key whose SHA-256 carries `bucket`, with that hash. Never stored or logged by the caller. */
export async function keyInBucket(prefix: string, bucket: number): Promise<{ key: string; hash: string }> {
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const key = generateKey(prefix);
    const hash = await sha256Hex(key);
    if (hexBucket(hash) === bucket) return { key, hash };
  }
  throw new Error(`no key in bucket ${bucket} after ${MAX_DRAWS} draws`);
}

/** A fresh key id (UUID v4) whose first byte is `bucket`. */
export function idInBucket(bucket: number): string {
  return bucket.toString(16).padStart(2, "0") + crypto.randomUUID().slice(2);
}

/**
 * A feed position of database `shard` as one number: `seq` × 256 + `shard`. Positions of one database
 * keep their order; positions of two are never compared (service/shard-feed.ts).
 */
export function shardStamp(seq: number, shard: number): number {
  return seq * MAX_SHARDS + shard;
}

/** The database and its own position of a stamp made by shardStamp. */
export function fromStamp(stamp: number): { shard: number; seq: number } {
  return { shard: stamp % MAX_SHARDS, seq: Math.floor(stamp / MAX_SHARDS) };
}

/** Where one bucket lives, and whether an operator is moving it (writes to its owners are refused). */
export interface BucketPlace {
  readonly shard: number;
  readonly moving: boolean;
}

/**
 * The map of all 256 buckets: each at its default (bucket % shards) unless a row of `shard_map`
 * places it elsewhere. Null when a row names a database beyond `shards` (D1_SHARDS was lowered under
 * it): nothing may then be read or written by the map.
 */
export function placeBuckets(
  rows: readonly { readonly bucket: number; readonly shard: number; readonly moving_since: number | null }[],
  shards: number,
): BucketPlace[] | null {
  const places: BucketPlace[] = Array.from({ length: BUCKETS }, (_, bucket) => ({
    shard: defaultShard(bucket, shards),
    moving: false,
  }));
  for (const row of rows) {
    if (row.shard >= shards) return null;
    places[row.bucket] = { shard: row.shard, moving: row.moving_since !== null };
  }
  return places;
}
