/** The audit log a page at a time, newest first: one key's events, or those of every owner the actor sees. */
import type { Actor, Owner } from "../model";
import type { EventListView, ListEventsInput } from "../schemas";
import type { KeyStore } from "../store/store";
import { toEventView } from "./audit-view";
import { decodeCursor, encodeCursor } from "./cursor";

/** A page of the events of `owners` (of one key when `keyId` is set), as `actor` may read them. */
export async function auditLog(
  store: Pick<KeyStore, "listEvents">,
  actor: Actor,
  owners: Owner[],
  keyId: string | null,
  input: ListEventsInput,
): Promise<EventListView> {
  const cursor = input.cursor === undefined ? null : decodeCursor(input.cursor);
  const rows = await store.listEvents({
    owners,
    keyId,
    action: input.action ?? null,
    since: input.since === undefined ? null : Date.parse(input.since),
    until: input.until === undefined ? null : Date.parse(input.until),
    limit: input.limit + 1,
    after: cursor && { at: cursor.time, id: cursor.id },
  });
  const page = rows.slice(0, input.limit);
  const last = page[page.length - 1];
  return {
    data: page.map((e) => toEventView(e, actor)),
    next_cursor: rows.length > input.limit && last ? encodeCursor(last.at, last.id) : null,
  };
}
