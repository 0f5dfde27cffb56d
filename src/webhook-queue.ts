/**
 * Wires webhooks from the bindings (like context.ts): the producer side (put deliveries on
 * WEBHOOK_QUEUE) and the consumer, this Worker's `queue` handler, which attempts each delivery and
 * acks it or hands it back to the queue with the delay the retry schedule chose.
 */
import { loadConfig } from "./config";
import type { Env, WebhookMessage } from "./env";
import { describeError, log } from "./log";
import { attemptDelivery, type DeliveryDeps } from "./service/webhook-delivery";
import type { Enqueue } from "./service/webhook-dispatch";
import { D1WebhookStore } from "./store/webhooks";

/** Cloudflare Queues' largest sendBatch. */
const SEND_BATCH = 100;
/** A storage failure mid-attempt: the message comes back after this long. */
const STORAGE_RETRY_SECONDS = 60;

/** Puts deliveries on the queue; null when the deployment has no WEBHOOK_QUEUE (nothing is dispatched). */
export function webhookEnqueue(env: Env): Enqueue | null {
  const queue = env.WEBHOOK_QUEUE;
  if (!queue) return null;
  return async (ids) => {
    for (let i = 0; i < ids.length; i += SEND_BATCH) {
      await queue.sendBatch(
        ids.slice(i, i + SEND_BATCH).map((delivery) => ({ body: { delivery }, contentType: "json" })),
      );
    }
  };
}

/** The consumer: one attempt per message (`overrides`: tests point `fetch` at a stub and fix the clock). */
export async function handleWebhookBatch(
  batch: MessageBatch<WebhookMessage>,
  env: Env,
  overrides: Partial<DeliveryDeps> = {},
): Promise<void> {
  const deps: DeliveryDeps = {
    store: new D1WebhookStore(env.DB),
    config: loadConfig(env),
    fetch: (input, init) => fetch(input, init),
    now: () => Date.now(),
    random: Math.random,
    ...overrides,
  };
  for (const message of batch.messages) {
    const id = typeof message.body?.delivery === "string" ? message.body.delivery : null;
    if (id === null) {
      message.ack();
      continue;
    }
    try {
      const outcome = await attemptDelivery(id, deps);
      if (outcome.kind === "done") message.ack();
      else message.retry({ delaySeconds: Math.max(1, Math.ceil(outcome.delayMs / 1000)) });
    } catch (error) {
      log("error", "webhook_delivery_failed", { delivery: id, error: describeError(error) });
      message.retry({ delaySeconds: STORAGE_RETRY_SECONDS });
    }
  }
}
