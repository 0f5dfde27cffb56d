/** The audit log in D1: a page of events, and retention's bounded delete. */
import type { D1Queries } from "./d1-session";
import type { AuditEvent } from "../model";
import { EVENT_COLUMNS, type EventRow, fromEventRow } from "./d1-rows";
import { attempt, newestFirst } from "./d1-sql";
import type { EventPage } from "./store";

export function listEvents(db: D1Queries, page: EventPage): Promise<AuditEvent[]> {
  return attempt("event list", async () => {
    const where: string[] = [`(${page.owners.map(() => "(owner_type = ? AND owner_id = ?)").join(" OR ")})`];
    const params: (string | number)[] = page.owners.flatMap((owner) => [owner.type, owner.id]);
    if (page.keyId !== null) {
      where.push("key_id = ?");
      params.push(page.keyId);
    }
    if (page.action !== null) {
      where.push("action = ?");
      params.push(page.action);
    }
    if (page.since !== null) {
      where.push("at >= ?");
      params.push(page.since);
    }
    if (page.until !== null) {
      where.push("at < ?");
      params.push(page.until);
    }
    const after = page.after && { time: page.after.at, id: page.after.id };
    const select = `SELECT ${EVENT_COLUMNS} FROM key_events`;
    const rows = await newestFirst<EventRow>(db, { select, time: "at", where, params, after, limit: page.limit });
    return rows.map(fromEventRow);
  });
}

export function purgeEvents(db: D1Queries, before: number, limit: number): Promise<number> {
  return attempt("event purge", async () => {
    const result = await db
      .prepare("DELETE FROM key_events WHERE id IN (SELECT id FROM key_events WHERE at < ? LIMIT ?)")
      .bind(before, limit)
      .run();
    return result.meta.changes;
  });
}
