/**
 * The webhook tests' harness: a recording queue (the dispatcher's producer), a receiver stub that
 * also answers DNS-over-HTTPS questions, a controlled clock, and the consumer run over what the queue
 * holds. Nothing reaches a network.
 */
import { env } from "cloudflare:workers";
import type { Env, WebhookMessage } from "../src/env";
import { handleWebhookBatch } from "../src/webhook-queue";
import { envWith } from "./helpers";

export const RESOLVER = "https://dns.test/dns-query";

export interface RecordingQueue {
  readonly sent: string[];
  readonly binding: Queue<WebhookMessage>;
}

export function recordingQueue(): RecordingQueue {
  const sent: string[] = [];
  const binding = {
    send: async (body: WebhookMessage) => void sent.push(body.delivery),
    sendBatch: async (messages: Iterable<MessageSendRequest<WebhookMessage>>) => {
      for (const message of messages) sent.push(message.body.delivery);
    },
  } as unknown as Queue<WebhookMessage>;
  return { sent, binding };
}

export interface Received {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly signal: AbortSignal | null | undefined;
  readonly redirect: RequestInit["redirect"];
}

export interface Receiver {
  readonly received: Received[];
  /** Host name → the addresses DNS answers for it (default: one public address). */
  readonly dns: Record<string, string[]>;
  /** The receiver's answer to the next delivery (default 200). */
  answer: (request: Request) => Response | Promise<Response>;
  readonly fetch: typeof fetch;
}

export function receiver(): Receiver {
  const state: Receiver = {
    received: [],
    dns: {},
    answer: () => new Response("ok"),
    fetch: async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.hostname === "dns.test") {
        const name = url.searchParams.get("name") ?? "";
        const type = url.searchParams.get("type");
        const addresses = state.dns[name] ?? ["93.184.216.34"];
        const Answer = addresses
          .filter((a) => (type === "AAAA") === a.includes(":"))
          .map((data) => ({ name, type: data.includes(":") ? 28 : 1, TTL: 60, data }));
        return Response.json({ Status: 0, Answer });
      }
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((value, key) => (headers[key] = value));
      state.received.push({
        url: url.href,
        headers,
        body: String(init?.body ?? ""),
        signal: init?.signal,
        redirect: init?.redirect,
      });
      return state.answer(new Request(url, { method: init?.method, headers, body: init?.body ?? null }));
    },
  };
  return state;
}

/** The test env with the recording queue and the stub resolver (configuration read afresh). */
export function hookEnv(queue: RecordingQueue, vars: Partial<Env> = {}): Env {
  return envWith({ WEBHOOK_QUEUE: queue.binding, WEBHOOK_DNS_RESOLVER: RESOLVER, ...vars });
}

export interface ConsumerResult {
  readonly acked: string[];
  /** Delivery id → the delay (seconds) its message was handed back with. */
  readonly retried: Record<string, number>;
}

/** Runs the consumer over `ids` (default: everything the queue holds, which is then emptied). */
export async function consume(
  queue: RecordingQueue,
  testEnv: Env,
  target: Receiver,
  now: number,
  ids: string[] = queue.sent.splice(0),
): Promise<ConsumerResult> {
  const acked: string[] = [];
  const retried: Record<string, number> = {};
  const messages = ids.map((delivery) => ({
    id: delivery,
    timestamp: new Date(now),
    attempts: 1,
    body: { delivery },
    ack: () => void acked.push(delivery),
    retry: (options?: QueueRetryOptions) => void (retried[delivery] = options?.delaySeconds ?? 0),
  }));
  const batch = { queue: "latchkey-webhooks", messages, ackAll() {}, retryAll() {} };
  await handleWebhookBatch(batch as unknown as MessageBatch<WebhookMessage>, testEnv, {
    fetch: target.fetch,
    now: () => now,
    random: () => 0.5,
  });
  return { acked, retried };
}

/** Deletes every endpoint and delivery (test files may share D1). */
export async function clearWebhooks(): Promise<void> {
  await env.DB.batch([
    env.DB.prepare("DELETE FROM webhook_deliveries"),
    env.DB.prepare("DELETE FROM webhook_endpoints"),
    env.DB.prepare("DELETE FROM webhook_outbox"),
  ]);
}

export interface Delivery {
  id: string;
  type: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: number | null;
  endpoint_id: string;
  payload: string;
}

export async function deliveriesOf(endpointId: string): Promise<Delivery[]> {
  const { results } = await env.DB.prepare(
    "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY created_at, rowid",
  )
    .bind(endpointId)
    .all<Delivery>();
  return results;
}
