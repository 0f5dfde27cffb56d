/**
 * Read-your-writes over D1 read replicas, on the HTTP face: the `Latchkey-Bookmark` header. Every
 * route of the management API runs in a request session (store/d1-session.ts): its read-only views
 * are served by the nearest replica, at least as new as the bookmark the request carries, and its
 * response carries the newest bookmark the request knows (after its writes, for a write). A client
 * that sends back the bookmark it last received reads its own writes; one that sends none reads from
 * whichever replica is nearest (a moment behind the primary at most, as D1 replicates).
 *
 * Not in a session: /v1/verify (the hot path: verification never reads a replica), a dialect's routes
 * (their clients know no bookmark, so they read the primary, as before), and the routes outside /v1/.
 * Nor anything with sharding by owner (D1_SHARDS above 1): a bookmark is one database's position, so
 * there every query goes to its database's primary, as before, and the header is neither read nor sent.
 */
import * as z from "zod/mini";
import { meta } from "../schemas";
import type { Config } from "../config";
import { ValidationError } from "../service/errors";
import { RequestSession, isBookmark } from "../store/d1-session";

export const BOOKMARK_HEADER = "Latchkey-Bookmark";

/** Whether a route runs in a request session: the management API (credentials, under /v1/, latchkey's own problems). */
export function takesBookmark(route: {
  readonly path: string;
  readonly auth: string;
  readonly errorFormat?: unknown;
}): boolean {
  return route.path.startsWith("/v1/") && (route.auth === "required" || route.auth === "person") && !route.errorFormat;
}

/** Whether management requests run in sessions: one D1 database (a bookmark is one database's position). */
export function replicated(config: Config): boolean {
  return config.shards.count === 1 && config.shards.problem === null;
}

/**
 * The request's session, from its `Latchkey-Bookmark` (absent or empty: none). A malformed one is
 * `invalid` (a 400 naming the header, raised after authentication) and the session starts without it.
 */
export function openSession(
  request: Request,
  db: D1Database,
): { session: RequestSession; invalid: ValidationError | null } {
  const writes = request.method !== "GET" && request.method !== "HEAD";
  const value = request.headers.get(BOOKMARK_HEADER) ?? "";
  if (value === "" || isBookmark(value)) {
    return { session: new RequestSession(db, value === "" ? null : value, writes), invalid: null };
  }
  const message = `Must be a bookmark latchkey returned in ${BOOKMARK_HEADER}, as it was (or no header)`;
  return {
    session: new RequestSession(db, null, writes),
    invalid: new ValidationError([{ field: BOOKMARK_HEADER, kind: "format", message }], "header"),
  };
}

/** Sets the session's newest bookmark on the response (none known: no header). */
export function withBookmark(response: Response, session: RequestSession): Response {
  const bookmark = session.bookmark();
  if (bookmark === null) return response;
  try {
    response.headers.set(BOOKMARK_HEADER, bookmark);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    copy.headers.set(BOOKMARK_HEADER, bookmark);
    return copy;
  }
}

const DESCRIPTION =
  "D1 read replication: read-your-writes across requests. Send back the `Latchkey-Bookmark` of the last response you received, as it was, and this request's reads (lists, gets, the audit log, usage) see everything that response saw, your writes included; without it they may be served by a replica a moment behind. Malformed: 400 `invalid_header`. Opaque: store and send it as a string. With sharding by owner (D1_SHARDS above 1) it is neither read nor sent.";

/** The request header, for the OpenAPI document (one parameter component, referenced by every route). */
export const BookmarkRequestHeader = z.object({
  [BOOKMARK_HEADER]: z.optional(z.string()).apply(
    meta({
      description: DESCRIPTION,
      example: "00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683",
      param: { id: BOOKMARK_HEADER },
    }),
  ),
});

/** The response header, for the OpenAPI document (one header component). */
export const BookmarkResponseHeader = z.optional(z.string()).apply(
  meta({
    description:
      "The newest bookmark this request saw (after its write, for a write): send it back as `Latchkey-Bookmark` to read your writes. On every response of the management API once a bookmark is known.",
    header: { id: BOOKMARK_HEADER },
  }),
);
