/**
 * The dispatcher: reads the audit events after its cursor in the outbox (each written by a trigger in
 * the same statement as its event, so only committed changes are there, and all of them: a key's
 * events, and an owner's credit warnings), records one
 * delivery per (event, endpoint that receives it) and puts the new ones on the queue. Idempotent: a
 * delivery's id is derived from the event and the endpoint, so a second dispatcher, or a dispatch
 * after a crash, records nothing twice; a delivery recorded but never enqueued is found by the sweep.
 *
 * It runs after every write of a key (waitUntil; `afterAuditedWrites`) and on the cron. Verification
 * writes no audit event and never runs it.
 */
import type { KeyStore } from "../store/store";
import type { D1WebhookStore, NewDelivery } from "../store/webhooks";
import { deliveryId, endpointReceives, eventTypeOf, webhookPayload } from "./webhook-rules";

/** Outbox rows read per round, and rounds per run (a run that leaves more is continued by the next). */
const BATCH = 100;
const MAX_ROUNDS = 10;
/** A pending delivery this late (ms) was lost between record and queue: the sweep enqueues it again. */
export const OVERDUE_MS = 10 * 60_000;

export type Enqueue = (deliveryIds: readonly string[]) => Promise<void>;

/**
 * A deployment without webhooks: once this isolate has seen no enabled endpoint, the dispatch after a
 * write is skipped for this long (a registration in this isolate ends it at once; events written
 * meanwhile wait in the outbox for the next dispatch or the cron).
 */
const NO_ENDPOINTS_MS = 5000;
let noEndpointsUntil = 0;

/** An endpoint was registered or enabled: dispatch after every write again. */
export function noteEndpointsChanged(): void {
  noEndpointsUntil = 0;
}

/** The dispatch after a write: nothing while no endpoint is enabled (checked at most every 5 s). */
export async function dispatchAfterWrite(store: D1WebhookStore, enqueue: Enqueue, now: number): Promise<number> {
  if (now < noEndpointsUntil) return 0;
  if (!(await store.anyEnabled())) {
    noEndpointsUntil = now + NO_ENDPOINTS_MS;
    return 0;
  }
  return dispatchWebhooks(store, enqueue, now);
}

/**
 * Dispatches what the outboxes hold (one database's, or with sharding by owner each database's, matched
 * against the endpoints of `store`'s: the first database); how many deliveries it recorded.
 */
export async function dispatchWebhooks(store: D1WebhookStore, enqueue: Enqueue, now: number): Promise<number> {
  let recorded = 0;
  for (const outbox of store.outboxes()) recorded += await dispatchOutbox(store, outbox, enqueue, now);
  return recorded;
}

async function dispatchOutbox(store: D1WebhookStore, outbox: D1WebhookStore, enqueue: Enqueue, now: number) {
  let recorded = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const rows = await outbox.outboxAfterCursor(BATCH);
    if (rows.length === 0) break;
    const endpoints = await store.enabledEndpoints(now);
    const deliveries: NewDelivery[] = [];
    for (const { event } of rows) {
      const type = event === null ? null : eventTypeOf(event.action);
      if (event === null || type === null) continue;
      for (const endpoint of endpoints) {
        if (!endpointReceives(endpoint, event, type)) continue;
        deliveries.push({
          id: await deliveryId(event.id, endpoint.id),
          endpointId: endpoint.id,
          eventId: event.id,
          type,
          payload: webhookPayload(event, type),
        });
      }
    }
    const inserted = await store.recordDispatch(deliveries, rows.at(-1)!.seq, now, outbox);
    if (inserted.length > 0) await enqueue(inserted);
    recorded += inserted.length;
    if (rows.length < BATCH) break;
  }
  return recorded;
}

/** The cron's sweep: pending deliveries long overdue (their message was lost) go on the queue again. */
export async function sweepOverdue(store: D1WebhookStore, enqueue: Enqueue, now: number): Promise<number> {
  const overdue = await store.overdueDeliveries(now - OVERDUE_MS, BATCH);
  if (overdue.length > 0) await enqueue(overdue.map((d) => d.id));
  return overdue.length;
}

/** The store methods that write audit events: after each, the dispatcher runs. */
const AUDITED_WRITES: readonly string[] = ["insert", "insertNew", "update", "rotate", "revoke"];

/**
 * `store`, calling `afterWrite` once each of its audit-writing methods has resolved. Every other method
 * is the store's own, reached through the prototype: reads (the hot path's among them) cost nothing more.
 */
export function afterAuditedWrites<S extends KeyStore>(store: S, afterWrite: () => void): S {
  const wrapped = Object.create(store) as S;
  for (const name of AUDITED_WRITES) {
    const method = (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[name];
    if (typeof method !== "function") continue;
    Object.defineProperty(wrapped, name, {
      value: async (...args: unknown[]) => {
        const result = await method.apply(store, args);
        afterWrite();
        return result;
      },
    });
  }
  return wrapped;
}
