/**
 * The read-only views of management: what a management request may read from a D1 replica (in the
 * request's session, store/d1-session.ts) rather than from the primary. Each is typed as the reads it
 * serves and nothing else, so no write, and no read a write or a security decision rests on, can be
 * made through it: those go through the store of record (ServiceDeps.store and the others), which is
 * always the primary.
 *
 * Served from a view: listing and getting keys (GET /v1/keys, /v1/keys/{id}), the audit log
 * (/v1/events, /v1/keys/{id}/events), a key's usage, an owner's limits, usage and events, webhook
 * endpoints and their deliveries, root keys (list and get). Never: verification and its D1 fallback,
 * the change feed, the management re-check of the acting key or root key, idempotency claims, and the
 * reads a write decides on (the key a PATCH, rotate, revoke or credits call finds first, the rows it
 * reaches, an owner's limits before a PUT, an endpoint before its update).
 */
import type { KeyStore } from "../store/store";
import type { OwnerLimitsStore } from "../store/owner-limits";
import type { RootKeyStore } from "../store/root-keys";
import type { UsageStore } from "../store/usage-counts";
import type { D1WebhookStore } from "../store/webhooks";

export interface ReadViews {
  readonly keys: Pick<KeyStore, "findById" | "list" | "listEvents">;
  /** Absent: no usage store (the report is unavailable). */
  readonly usage: Pick<UsageStore, "read"> | undefined;
  /** Absent: no owner limits store. */
  readonly ownerLimits: Pick<OwnerLimitsStore, "get" | "usage" | "events"> | undefined;
}

export type WebhookViews = Pick<D1WebhookStore, "findEndpoint" | "listEndpoints" | "listDeliveries">;

export type RootKeyViews = Pick<RootKeyStore, "findById" | "list">;

/** The views read from the store of record itself (RPC, the cron, tests: no session, the primary). */
export function primaryViews(stores: {
  readonly store: KeyStore;
  readonly usageStore?: UsageStore | undefined;
  readonly ownerLimits?: OwnerLimitsStore | undefined;
}): ReadViews {
  return { keys: stores.store, usage: stores.usageStore, ownerLimits: stores.ownerLimits };
}
