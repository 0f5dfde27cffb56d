/**
 * One delivery attempt, as Standard Webhooks 1.0 says: POST the stored payload with `webhook-id`,
 * `webhook-timestamp` and `webhook-signature` (one `v1,` signature per live secret), within a timeout,
 * without following redirects. Before it, the endpoint's host is resolved over DNS-over-HTTPS and any
 * private answer refuses the attempt (DNS rebinding). 2xx: delivered. 410: failed, and the endpoint is
 * disabled. Anything else: tried again on the schedule of webhook-rules.ts (never sooner than a
 * Retry-After), until the attempts are spent.
 */
import type { Config } from "../config";
import { hostOf, isAllowedLoopback, isRefusedAddress, literalAddress } from "../keys/webhook-address";
import { signatureHeader } from "../keys/webhook-signature";
import type { D1WebhookStore, DeliveryRow, EndpointRow } from "../store/webhooks";
import { decryptSecret } from "./webhook-secrets";
import { retryAfterMs, retryDelayMs } from "./webhook-rules";

export interface DeliveryDeps {
  readonly store: D1WebhookStore;
  readonly config: Config;
  /** Reaches receivers and the DNS resolver (tests point it at a stub). */
  readonly fetch: typeof fetch;
  readonly now: () => number;
  /** In [0, 1): the jitter. */
  readonly random: () => number;
}

/** What the queue does with the message: nothing more, or deliver it again after `delayMs`. */
export type Outcome = { readonly kind: "done" } | { readonly kind: "retry"; readonly delayMs: number };
const DONE: Outcome = { kind: "done" };

const DNS_TIMEOUT_MS = 5000;

/** Why the endpoint's host may not be reached now (`address_refused`, `dns_failed`), or null. */
export async function destinationRefusal(url: URL, deps: DeliveryDeps): Promise<string | null> {
  if (isAllowedLoopback(url, deps.config.webhooks.allowLoopback)) return null;
  if (url.protocol !== "https:") return "address_refused";
  const host = hostOf(url);
  if (literalAddress(host) !== null) return isRefusedAddress(host) ? "address_refused" : null;
  const addresses: string[] = [];
  for (const type of ["A", "AAAA"]) {
    const query = new URL(deps.config.webhooks.dnsResolver);
    query.searchParams.set("name", host);
    query.searchParams.set("type", type);
    try {
      const response = await deps.fetch(query, {
        headers: { accept: "application/dns-json" },
        signal: AbortSignal.timeout(DNS_TIMEOUT_MS),
      });
      if (!response.ok) return "dns_failed";
      const answer = (await response.json()) as { Answer?: { type?: number; data?: unknown }[] };
      for (const record of answer.Answer ?? []) {
        if ((record.type === 1 || record.type === 28) && typeof record.data === "string") addresses.push(record.data);
      }
    } catch {
      return "dns_failed";
    }
  }
  if (addresses.length === 0) return "dns_failed";
  return addresses.some(isRefusedAddress) ? "address_refused" : null;
}

/**
 * The secrets that sign now: the current one, and the previous one during its grace period (left out
 * if WEBHOOK_SECRET_KEY changed since it was stored). Null when the current one cannot be read.
 */
async function liveSecrets(endpoint: EndpointRow, secretKey: string, now: number): Promise<string[] | null> {
  const read = (stored: string) => decryptSecret(secretKey, endpoint.id, stored).catch(() => null);
  const current = await read(endpoint.secret);
  if (current === null) return null;
  const secrets = [current];
  if (endpoint.previousSecret !== null && endpoint.previousExpiresAt !== null && endpoint.previousExpiresAt > now) {
    const previous = await read(endpoint.previousSecret);
    if (previous !== null) secrets.push(previous);
  }
  return secrets;
}

interface Answer {
  readonly status: number | null;
  readonly error: string | null;
  readonly retryAfterMs: number | null;
}

async function post(endpoint: EndpointRow, delivery: DeliveryRow, deps: DeliveryDeps, now: number): Promise<Answer> {
  const secretKey = deps.config.webhooks.secretKey;
  if (secretKey === null) return { status: null, error: "not_configured", retryAfterMs: null };
  const timestamp = Math.floor(now / 1000);
  const secrets = await liveSecrets(endpoint, secretKey, now);
  if (secrets === null) return { status: null, error: "secret_unreadable", retryAfterMs: null };
  try {
    const response = await deps.fetch(endpoint.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "latchkey-webhooks/1",
        "webhook-id": delivery.id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": await signatureHeader(secrets, delivery.id, timestamp, delivery.payload),
      },
      body: delivery.payload,
      redirect: "manual",
      signal: AbortSignal.timeout(deps.config.webhooks.timeoutMs),
    });
    await response.body?.cancel();
    return {
      status: response.status,
      error: null,
      retryAfterMs: retryAfterMs(response.headers.get("retry-after"), now),
    };
  } catch (error) {
    const timeout = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return { status: null, error: timeout ? "timeout" : "network", retryAfterMs: null };
  }
}

/** Attempts the delivery `id` if it is pending and due; what the queue should do with its message. */
export async function attemptDelivery(id: string, deps: DeliveryDeps): Promise<Outcome> {
  const { store } = deps;
  const now = deps.now();
  const delivery = await store.findDelivery(id);
  if (delivery === null || delivery.status !== "pending") return DONE;
  if (delivery.nextAttemptAt !== null && delivery.nextAttemptAt > now + 1000) {
    return { kind: "retry", delayMs: delivery.nextAttemptAt - now };
  }
  const fail = async (changes: { lastError?: string | null; lastStatus?: number | null; attempts?: number }) => {
    await store.updateDelivery(id, "pending", { status: "failed", nextAttemptAt: null, ...changes }, now);
    return DONE;
  };
  const endpoint = await store.findEndpoint(delivery.endpointId, now);
  if (endpoint === null) return fail({ lastError: "endpoint_deleted" });
  // Disabled, or a root key's endpoint whose chain has no live key left (expired).
  if (!endpoint.enabled || !endpoint.active) return fail({ lastError: "endpoint_disabled" });

  const refusal = await destinationRefusal(new URL(endpoint.url), deps);
  const answer: Answer = refusal
    ? { status: null, error: refusal, retryAfterMs: null }
    : await post(endpoint, delivery, deps, now);
  const attempts = delivery.attempts + 1;
  const result = { attempts, lastStatus: answer.status, lastError: answer.error };
  if (answer.status !== null && answer.status >= 200 && answer.status < 300) {
    await store.updateDelivery(id, "pending", { ...result, status: "delivered", nextAttemptAt: null }, now);
    return DONE;
  }
  if (answer.status === 410) {
    await store.updateEndpoint(endpoint.id, { enabled: false, disabledReason: "gone" }, now);
    return fail(result);
  }
  const delayMs = retryDelayMs(attempts, deps.random(), answer.retryAfterMs);
  if (delayMs === null) return fail(result);
  await store.updateDelivery(id, "pending", { ...result, nextAttemptAt: now + delayMs }, now);
  return { kind: "retry", delayMs };
}
