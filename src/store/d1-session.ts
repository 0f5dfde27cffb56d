/**
 * A management request's D1 sessions (read replication, docs/scaling.md): which database instance
 * answers each of its queries, and the bookmark its response hands back.
 *
 * - `views`: the read-only views of management (list and get keys, the audit log, usage, an owner's
 *   limits; service/read-views.ts) read through ONE D1 session, started from the bookmark the client
 *   passed back or, without one, "first-unconstrained": D1 serves it from the nearest replica that is
 *   at least as new as the bookmark, so a client that passes back the bookmark of its write reads it.
 *   The session is made on the views' first query: a request that reads no view makes none.
 * - `primary`: everything else (writes, and every read a write or a security decision rests on: the
 *   verify fallback, the change feed, the re-check of the acting key, root keys, idempotency). Always
 *   the primary. In a read request, the binding itself. In a write request, each query in a session of
 *   its own started "first-primary" (what the binding sends with every query: the primary answers),
 *   so that the primary's bookmark after each is known; a session is made only when a query is.
 *
 * The response's bookmark is the newest of the client's and every bookmark those sessions saw.
 */

/** What a D1 store queries through: the binding, a session, or a RequestSession's handles. */
export type D1Queries = Pick<D1Database, "prepare" | "batch">;

/**
 * D1's bookmarks: four hex fields (a position in the database's log). Only a string of this shape is
 * passed to D1 or handed to a client; the one place to change should D1's shape ever change.
 */
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

export function isBookmark(value: string): boolean {
  return BOOKMARK.test(value);
}

/** The newer of two bookmarks (D1's sort lexicographically, oldest first); none is older than any. */
export function newerBookmark(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return b > a ? b : a;
}

export class RequestSession {
  /** The handle of the read-only views: the one session, made on first use. */
  readonly views: D1Queries;
  /** The handle of everything else: the primary. */
  readonly primary: D1Queries;
  private viewSession: D1DatabaseSession | null = null;
  private readonly primarySessions: D1DatabaseSession[] = [];

  /**
   * `from`: the client's bookmark (a well-formed one: see isBookmark), or null. `writes`: the request
   * may write (any method but GET and HEAD), so its response carries the primary's bookmark after them.
   */
  constructor(
    private readonly db: D1Database,
    private readonly from: string | null,
    writes: boolean,
  ) {
    this.views = {
      prepare: (query) => this.viewsSession().prepare(query),
      batch: <T>(statements: D1PreparedStatement[]) => this.viewsSession().batch<T>(statements),
    };
    this.primary = writes
      ? {
          prepare: (query) => this.primarySession().prepare(query),
          batch: <T>(statements: D1PreparedStatement[]) => this.primarySession().batch<T>(statements),
        }
      : db;
  }

  /** The newest bookmark known: the client's, or a newer one a query of this request saw. */
  bookmark(): string | null {
    let latest = this.from;
    for (const session of [this.viewSession, ...this.primarySessions]) {
      const seen = session?.getBookmark() ?? null;
      if (seen !== null && isBookmark(seen)) latest = newerBookmark(latest, seen);
    }
    return latest;
  }

  private viewsSession(): D1DatabaseSession {
    this.viewSession ??= this.db.withSession(this.from ?? "first-unconstrained");
    return this.viewSession;
  }

  private primarySession(): D1DatabaseSession {
    const session = this.db.withSession("first-primary");
    this.primarySessions.push(session);
    return session;
  }
}
