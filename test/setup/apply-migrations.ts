import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
// The second database of sharding by owner (test/storage/shards.test.ts); unused unless D1_SHARDS is 2.
await applyD1Migrations(env.DB_1, env.TEST_MIGRATIONS);
