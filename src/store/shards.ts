/**
 * Sharding by owner's router (docs/scaling.md): which D1 database holds an owner, a key (by its hash)
 * or a key id, from the bucket map (`shard_map` in the first database, read at most every
 * MAP_TTL_MS per isolate) and the directory of homes (`key_homes`, keys whose hash carries no bucket).
 * Used only with D1_SHARDS > 1; with one database nothing here runs.
 */
import { BucketMovingError, StorageMisconfiguredError } from "./store";
import type { Env, ShardBindings } from "../env";
import type { ShardConfig } from "../shard-config";
import { shardBinding } from "../shard-config";
import { type BucketPlace, hexBucket, ownerBucket, placeBuckets } from "../keys/shard";
import { attempt } from "./d1-sql";

/** How long an isolate uses the map it read: a move waits longer than this before it copies (scripts/move-bucket.mjs). */
export const MAP_TTL_MS = 5000;
/** Seconds a write refused during a move is told to wait. */
export const MOVE_RETRY_AFTER_SECONDS = 5;

let cachedMap: { db: D1Database; shards: number; at: number; places: Promise<BucketPlace[]> } | null = null;

/** Forgets this isolate's copy of the map (tests, and the move's own checks). */
export function forgetShardMap(): void {
  cachedMap = null;
}

export class ShardRouter {
  constructor(
    private readonly env: Env,
    readonly config: ShardConfig,
  ) {}

  get count(): number {
    return this.config.count;
  }

  /** The binding of database `index`; a misconfiguration (shard-config.ts) refuses service. */
  db(index: number): D1Database {
    if (this.config.problem) throw new StorageMisconfiguredError(this.config.problem);
    const db = index === 0 ? this.env.DB : (this.env as unknown as ShardBindings)[`DB_${index}`];
    if (!db) throw new StorageMisconfiguredError(`the D1 binding ${shardBinding(index)} is missing`);
    return db;
  }

  /** The map of buckets, as of at most MAP_TTL_MS ago. */
  async places(now = Date.now()): Promise<BucketPlace[]> {
    const first = this.db(0);
    if (!cachedMap || cachedMap.db !== first || cachedMap.shards !== this.count || now - cachedMap.at >= MAP_TTL_MS) {
      const places = readPlaces(first, this.count);
      cachedMap = { db: first, shards: this.count, at: now, places };
      places.catch(() => {
        if (cachedMap?.places === places) cachedMap = null;
      });
    }
    return cachedMap.places;
  }

  /** The database of a bucket. */
  async shardOfBucket(bucket: number): Promise<number> {
    return (await this.places())[bucket]!.shard;
  }

  /**
   * The database of `owner`, and its bucket. For a write, a bucket being moved refuses (503 with
   * Retry-After) until the move is over.
   */
  async ownerShard(owner: { type: string; id: string }, write: boolean): Promise<{ shard: number; bucket: number }> {
    const bucket = await ownerBucket(owner);
    const place = (await this.places())[bucket]!;
    if (write && place.moving) throw new BucketMovingError(bucket, MOVE_RETRY_AFTER_SECONDS);
    return { shard: place.shard, bucket };
  }

  /**
   * Refuses (503 with Retry-After) a write the map routes by bucket rather than by owner (a key id's
   * usage counts) while that bucket is being moved, so nothing lands in the old database after the
   * move copied it (scripts/move-bucket.mjs).
   */
  async refuseIfMoving(bucket: number): Promise<void> {
    if ((await this.places())[bucket]?.moving) throw new BucketMovingError(bucket, MOVE_RETRY_AFTER_SECONDS);
  }

  /** The database a key id's first byte names (the owner's, for ids made in sharded mode). */
  async idShard(id: string): Promise<number> {
    const bucket = hexBucket(id);
    return Number.isInteger(bucket) ? this.shardOfBucket(bucket) : 0;
  }

  /** Every database, `first` first and then the others in order: where a key id is looked for. */
  searchOrder(first: number): number[] {
    return [first, ...Array.from({ length: this.count }, (_, i) => i).filter((i) => i !== first)];
  }

  /** The owner's bucket of a key whose hash carries another, from the directory of homes; null: none. */
  async homeOf(hash: string): Promise<number | null> {
    const row = await attempt("key home lookup", () =>
      this.db(0).prepare("SELECT bucket FROM key_homes WHERE hash = ?").bind(hash).first<{ bucket: number }>(),
    );
    return row?.bucket ?? null;
  }

  /**
   * Claims `hash` for a key of an owner in `bucket` in the directory of homes: false when it is
   * already claimed for another bucket (another owner's key has that hash).
   */
  async claimHome(hash: string, bucket: number): Promise<boolean> {
    const row = await attempt("key home claim", () =>
      this.db(0)
        .prepare(
          "INSERT INTO key_homes (hash, bucket) VALUES (?1, ?2) ON CONFLICT (hash) DO UPDATE SET bucket = bucket RETURNING bucket",
        )
        .bind(hash, bucket)
        .first<{ bucket: number }>(),
    );
    return row?.bucket === bucket;
  }
}

function readPlaces(db: D1Database, shards: number): Promise<BucketPlace[]> {
  return attempt("shard map read", async () => {
    const { results } = await db
      .prepare("SELECT bucket, shard, moving_since FROM shard_map")
      .all<{ bucket: number; shard: number; moving_since: number | null }>();
    const places = placeBuckets(results, shards);
    if (!places) {
      throw new StorageMisconfiguredError(
        `shard_map places a bucket in a database beyond D1_SHARDS (${shards}): raise D1_SHARDS or move the bucket back`,
      );
    }
    return places;
  });
}
