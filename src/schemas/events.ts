/** The audit log: actions, events, and the listing options. */
import * as z from "zod/mini";
import { KeyId, OwnerIdField, Timestamp, described, meta, pageCursor, pageLimit } from "./common";

export const AUDIT_ACTIONS = [
  "created",
  "imported",
  "upgraded",
  "updated",
  "disabled",
  "enabled",
  "rotated",
  "revoked",
  "leaked",
  // Warnings latchkey writes on its own (actor `latchkey`): docs/audit.md, "Warnings".
  "expiring",
  "expired",
  "credits_low",
  "credits_exhausted",
] as const;

export const AuditEvent = z
  .object({
    id: described(KeyId, "The event's id."),
    key_id: KeyId,
    action: z.enum(AUDIT_ACTIONS),
    actor: described(
      z.string(),
      "`user:<sub>`, `key:<id>`, `root:<id>` (a root key), `service`, or `github` (a secret scanning report); `latchkey` for the warnings latchkey writes on its own (`expiring`, `expired`, `credits_low`, `credits_exhausted`), which have no ip nor user agent.",
    ),
    at: Timestamp,
    changes: described(
      z.record(z.string(), z.object({ old: z.unknown(), new: z.unknown() })),
      "Each changed field with its old and new value.",
    ),
    ip: described(
      z.nullable(z.string()),
      "The changer's address (CF-Connecting-IP), when over HTTP. Shown only to the key's owner, a workspace admin (workspace keys) and RPC; null for everyone else.",
    ),
    user_agent: described(
      z.nullable(z.string()),
      "The changer's User-Agent, when over HTTP. Shown only to the key's owner, a workspace admin (workspace keys) and RPC; null for everyone else.",
    ),
  })
  .apply(meta({ id: "AuditEvent" }));
export type AuditEventView = z.infer<typeof AuditEvent>;

export const EventList = z
  .object({ data: z.array(AuditEvent), next_cursor: z.nullable(z.string()) })
  .apply(meta({ id: "EventList" }));
export type EventListView = z.infer<typeof EventList>;

const eventQueryFields = {
  cursor: pageCursor(),
  action: described(z.optional(z.enum(AUDIT_ACTIONS)), "Only events of this action."),
  since: described(z.optional(Timestamp), "Only events at or after this time."),
  until: described(z.optional(Timestamp), "Only events before this time."),
};

/** Audit log options as a query string (HTTP). */
export const ListEventsQuery = z
  .strictObject({ limit: pageLimit(z.coerce.number()), ...eventQueryFields })
  .apply(meta({ id: "ListEventsQuery" }));
export type ListEventsInput = z.output<typeof ListEventsQuery>;

/** The audit log of owners (GET /v1/events): also filtered by owner, which a root key must name. */
export const ListOwnerEventsQuery = z
  .strictObject({
    limit: pageLimit(z.coerce.number()),
    ...eventQueryFields,
    owner_type: described(
      z.optional(z.enum(["user", "workspace"])),
      "Only this owner's events, with `owner_id`; required with a root key.",
    ),
    owner_id: described(
      z.optional(OwnerIdField),
      "Only this owner's events; required with a root key (anyone else may name only an owner they act for).",
    ),
  })
  .apply(meta({ id: "ListOwnerEventsQuery" }));
export type ListOwnerEventsInput = z.output<typeof ListOwnerEventsQuery>;

/** The same options as typed values (RPC). */
export const ListEventsOptions = z.strictObject({ limit: pageLimit(z.number()), ...eventQueryFields });
