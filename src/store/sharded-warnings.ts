/**
 * Where a usage counter's alarm writes its credit warnings (store/counter.ts). With one database, DB.
 * With sharding by owner (D1_SHARDS > 1; docs/scaling.md), the database of the owner's bucket, so a
 * warning lands in its owner's audit log, ledger and outbox: an owner's counter warns its owner there; a
 * key chain's counter first finds its owner (the chain's keys: its id's database first, then the
 * others). A bucket being moved refuses the write (the counter retries it after the move), and a
 * misconfigured D1_SHARDS refuses it rather than write to the wrong database.
 */
import type { Env } from "../env";
import type { Owner, OwnerType } from "../model";
import { readShardConfig } from "../shard-config";
import { attempt } from "./d1-sql";
import { ShardRouter } from "./shards";
import type { WarningStore } from "./warnings";

/** What a counter writes: a chain's credit warnings and an owner's. */
export type CreditWarningStore = Pick<WarningStore, "creditWarning" | "ownerCreditWarning">;

type StoreFor = (db: D1Database) => CreditWarningStore;

/** The credit warnings' store for `env`: DB's with one database, the owners' databases with several. */
export function creditWarningsFor(env: Env, storeFor: StoreFor): CreditWarningStore {
  const shards = readShardConfig(env, []);
  if (shards.count === 1 && shards.problem === null) return storeFor(env.DB);
  return new ShardedCreditWarnings(new ShardRouter(env, shards), storeFor);
}

class ShardedCreditWarnings implements CreditWarningStore {
  constructor(
    private readonly router: ShardRouter,
    private readonly storeFor: StoreFor,
  ) {}

  async creditWarning(...[chain, warning]: Parameters<WarningStore["creditWarning"]>): Promise<void> {
    const owner = await this.chainOwner(chain);
    // No key of the chain anywhere (purged): its id's database, where the ledger row alone is written.
    const shard = owner ? (await this.router.ownerShard(owner, true)).shard : await this.router.idShard(chain);
    return this.storeFor(this.router.db(shard)).creditWarning(chain, warning);
  }

  async ownerCreditWarning(...[owner, warning]: Parameters<WarningStore["ownerCreditWarning"]>): Promise<void> {
    const { shard } = await this.router.ownerShard(owner, true);
    return this.storeFor(this.router.db(shard)).ownerCreditWarning(owner, warning);
  }

  /** The owner of a key chain's keys (its first key, or one sharing its counter); null: none is stored. */
  private async chainOwner(chain: string): Promise<Owner | null> {
    for (const shard of this.router.searchOrder(await this.router.idShard(chain))) {
      const db = this.router.db(shard);
      const row = await attempt("credit warning owner", () =>
        db
          .prepare("SELECT owner_type, owner_id FROM api_keys WHERE id = ?1 OR usage_id = ?1 LIMIT 1")
          .bind(chain)
          .first<{ owner_type: OwnerType; owner_id: string }>(),
      );
      if (row) return { type: row.owner_type, id: row.owner_id };
    }
    return null;
  }
}
