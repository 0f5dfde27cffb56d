/**
 * KeyStore on D1, the store of record. Rows hold only the key's SHA-256 (`hash`, unique index),
 * never the key. Times are epoch milliseconds; JSON columns hold scopes, resources and metadata.
 * Every D1 failure surfaces as StorageUnavailableError, with the cause kept for the log (d1-sql.ts,
 * `attempt`). This class only wires the interface to its parts, each method to the function of the
 * same name given the store's D1 handle: d1-writes.ts (key rows, lineage, idempotency claims in
 * d1-idempotency.ts), d1-reads.ts (lookups, pages, the change feed), d1-events.ts (the audit log),
 * d1-legacy.ts (imported keys' upgrades), d1-maintenance.ts (readiness, purge, last use).
 */
import type { D1Queries } from "./d1-session";
import * as events from "./d1-events";
import * as legacy from "./d1-legacy";
import * as maintenance from "./d1-maintenance";
import * as reads from "./d1-reads";
import * as writes from "./d1-writes";
import type { KeyStore, StoreArgs, StoreMaintenance } from "./store";

export class D1KeyStore implements KeyStore, StoreMaintenance {
  constructor(private readonly db: D1Queries) {}

  insert(...args: StoreArgs<"insert">) {
    return writes.insert(this.db, ...args);
  }

  insertNew(...args: StoreArgs<"insertNew">) {
    return writes.insertNew(this.db, ...args);
  }

  reach(...args: StoreArgs<"reach">) {
    return writes.reach(this.db, ...args);
  }

  revoke(...args: StoreArgs<"revoke">) {
    return writes.revoke(this.db, ...args);
  }

  update(...args: StoreArgs<"update">) {
    return writes.update(this.db, ...args);
  }

  rotate(...args: StoreArgs<"rotate">) {
    return writes.rotate(this.db, ...args);
  }

  findByHash(...args: StoreArgs<"findByHash">) {
    return reads.findByHash(this.db, ...args);
  }

  findById(...args: StoreArgs<"findById">) {
    return reads.findById(this.db, ...args);
  }

  replacementOf(...args: StoreArgs<"replacementOf">) {
    return reads.replacementOf(this.db, ...args);
  }

  list(...args: StoreArgs<"list">) {
    return reads.list(this.db, ...args);
  }

  changesAfter(...args: StoreArgs<"changesAfter">) {
    return reads.changesAfter(this.db, ...args);
  }

  /** One database: its own feed (a database index is the sharded store's). */
  latestChanges(...[limit]: StoreArgs<"latestChanges">) {
    return reads.latestChanges(this.db, limit);
  }

  listEvents(...args: StoreArgs<"listEvents">) {
    return events.listEvents(this.db, ...args);
  }

  purgeEvents(...args: StoreArgs<"purgeEvents">) {
    return events.purgeEvents(this.db, ...args);
  }

  upgradeLegacyHash(...args: StoreArgs<"upgradeLegacyHash">) {
    return legacy.upgradeLegacyHash(this.db, ...args);
  }

  upgradeHmacDigest(...args: StoreArgs<"upgradeHmacDigest">) {
    return legacy.upgradeHmacDigest(this.db, ...args);
  }

  findUpgradedHmac(...args: StoreArgs<"findUpgradedHmac">) {
    return legacy.findUpgradedHmac(this.db, ...args);
  }

  touchLastUsed(...args: StoreArgs<"touchLastUsed">) {
    return maintenance.touchLastUsed(this.db, ...args);
  }

  checkSchema(...args: StoreArgs<"checkSchema">) {
    return maintenance.checkSchema(this.db, ...args);
  }

  purge(...args: StoreArgs<"purge">) {
    return maintenance.purge(this.db, ...args);
  }
}
