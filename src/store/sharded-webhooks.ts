/**
 * Webhooks over several D1 databases (sharding by owner, D1_SHARDS > 1; docs/scaling.md): endpoints and
 * deliveries stay in the first database, while each database keeps its own outbox and cursor, filled by
 * its own triggers in the statement that writes an event there. The dispatcher reads every outbox and
 * records deliveries in the first database (exactly once: a delivery's id is derived from the event and
 * the endpoint). A database other than the first has no endpoints, so its triggers fire while it holds
 * the relay row (migrations/0015_webhook_relay.sql), written here before an endpoint is registered or
 * enabled, and by the cron while one is enabled (a database added later gets it too).
 */
import { D1WebhookStore, type EndpointChanges, type EndpointRow } from "./webhooks";
import type { ShardRouter } from "./shards";
import { attempt } from "./d1-sql";

export class ShardedWebhookStore extends D1WebhookStore {
  private readonly all: readonly D1WebhookStore[];

  constructor(private readonly router: ShardRouter) {
    super(router.db(0));
    this.all = [this, ...Array.from({ length: router.count - 1 }, (_, i) => new D1WebhookStore(router.db(i + 1)))];
  }

  override outboxes(): readonly D1WebhookStore[] {
    return this.all;
  }

  /** The cron: while an endpoint is enabled, every other database holds the relay row. */
  override async prepareOutboxes(): Promise<void> {
    if (await this.anyEnabled()) await this.relay();
  }

  /** The relay row in every database but the first (its events then enter its own outbox). */
  private async relay(): Promise<void> {
    for (let shard = 1; shard < this.router.count; shard++) {
      const db = this.router.db(shard);
      await attempt("webhook relay", () => db.prepare("INSERT OR IGNORE INTO webhook_relay (id) VALUES (1)").run());
    }
  }

  /** Relayed first: an event written anywhere once the endpoint exists is in some outbox. */
  override async insertEndpoint(e: EndpointRow): Promise<void> {
    if (e.enabled) await this.relay();
    return super.insertEndpoint(e);
  }

  override async updateEndpoint(id: string, changes: EndpointChanges, at: number): Promise<void> {
    if (changes.enabled === true) await this.relay();
    return super.updateEndpoint(id, changes, at);
  }
}
