import type { D1Migration } from "cloudflare:test";
import type { Env as LatchkeyEnv } from "../src/env";

declare global {
  namespace Cloudflare {
    interface Env extends LatchkeyEnv {
      TEST_MIGRATIONS: D1Migration[];
      /** The second database of sharding by owner (wrangler.toml; test/storage/shards.test.ts). */
      DB_1: D1Database;
    }
  }
}
