/**
 * A management request's D1 sessions (src/store/d1-session.ts), against a stand-in D1 that records
 * which handle each query went through and which sessions were made: the views read one session,
 * started from the client's bookmark or "first-unconstrained", made on their first query; everything
 * else goes to the primary (the binding in a read request, a "first-primary" session per query in a
 * write request, so its bookmark is known); the response's bookmark is the newest known.
 */
import { describe, expect, it } from "vitest";
import { RequestSession, isBookmark, newerBookmark } from "../../src/store/d1-session";

const OLD = "00000001-00000002-00000003-0123456789abcdef0123456789abcdef";
const MID = "00000001-00000005-00000000-00000000000000000000000000000000";
const NEW = "00000001-0000000a-00000000-00000000000000000000000000000000";

interface Made {
  /** What the session was started from. */
  readonly from: string;
  readonly queries: string[];
  bookmark: string | null;
}

/**
 * A D1 binding that answers nothing real: each session it makes is recorded, and after its first query
 * holds the bookmark `answer(from)` gives (what D1 would have answered).
 */
function standIn(answer: (from: string) => string | null) {
  const sessions: Made[] = [];
  const binding: string[] = [];
  const statement = (run: () => void) =>
    ({
      bind: () => statement(run),
      first: async () => (run(), null),
      all: async () => (run(), { results: [], success: true, meta: {} }),
      run: async () => (run(), { success: true, meta: {} }),
    }) as unknown as D1PreparedStatement;
  const db = {
    prepare: (sql: string) => (binding.push(sql), statement(() => {})),
    batch: async () => [],
    withSession(from: string) {
      const made: Made = { from, queries: [], bookmark: null };
      sessions.push(made);
      const ran = () => (made.bookmark = answer(from));
      return {
        prepare: (sql: string) => (made.queries.push(sql), statement(ran)),
        batch: async (statements: D1PreparedStatement[]) => (
          made.queries.push(`batch of ${statements.length}`),
          ran(),
          []
        ),
        getBookmark: () => made.bookmark,
      };
    },
  } as unknown as D1Database;
  return { db, sessions, binding };
}

describe("a request session", () => {
  it("makes no D1 session until a query needs one: a request that reads and writes nothing costs nothing", () => {
    const { db, sessions, binding } = standIn(() => NEW);
    const session = new RequestSession(db, OLD, true);
    expect(session.views).toBeDefined();
    expect(session.primary).toBeDefined();
    expect(sessions).toEqual([]);
    expect(binding).toEqual([]);
    expect(session.bookmark()).toBe(OLD); // the client's own, handed back
    expect(new RequestSession(db, null, false).bookmark()).toBeNull();
  });

  it("reads every view through ONE session started from the client's bookmark", async () => {
    const { db, sessions } = standIn(() => NEW);
    const session = new RequestSession(db, OLD, false);
    await session.views.prepare("SELECT list").all();
    await session.views.prepare("SELECT events").bind(1).all();
    expect(sessions).toEqual([{ from: OLD, queries: ["SELECT list", "SELECT events"], bookmark: NEW }]);
    expect(session.bookmark()).toBe(NEW);
  });

  it("without a bookmark, starts the views' session first-unconstrained (the nearest replica)", async () => {
    const { db, sessions } = standIn(() => MID);
    const session = new RequestSession(db, null, false);
    await session.views.prepare("SELECT list").all();
    expect(sessions.map((s) => s.from)).toEqual(["first-unconstrained"]);
    expect(session.bookmark()).toBe(MID);
  });

  it("in a read request, sends everything else through the binding (the primary), in no session", async () => {
    const { db, sessions, binding } = standIn(() => NEW);
    const session = new RequestSession(db, OLD, false);
    expect(session.primary).toBe(db);
    await session.primary.prepare("SELECT by hash").first();
    expect(binding).toEqual(["SELECT by hash"]);
    expect(sessions).toEqual([]);
    expect(session.bookmark()).toBe(OLD); // a security read moves no one's bookmark
  });

  it("in a write request, runs each other query in a first-primary session of its own and keeps the primary's bookmark", async () => {
    const primaryAfter = [MID, NEW];
    const { db, sessions, binding } = standIn((from) =>
      from === "first-primary" ? (primaryAfter.shift() ?? null) : OLD,
    );
    const session = new RequestSession(db, OLD, true);
    await session.primary.prepare("SELECT the acting key").first();
    await session.primary.batch([session.primary.prepare("INSERT the key")]);
    expect(binding).toEqual([]);
    // One session per statement prepared, one per batch: every one of them first-primary.
    expect(sessions.map((s) => s.from)).toEqual(["first-primary", "first-primary", "first-primary"]);
    expect(sessions.flatMap((s) => s.queries)).toEqual(["SELECT the acting key", "INSERT the key", "batch of 1"]);
    expect(session.bookmark()).toBe(NEW); // after the write
  });

  it("hands back the newest bookmark: never older than the client's, and never one of another shape", async () => {
    const older = standIn(() => OLD);
    const behind = new RequestSession(older.db, NEW, false);
    await behind.views.prepare("SELECT list").all();
    expect(behind.bookmark()).toBe(NEW);

    const odd = standIn(() => "zzzz-not-a-bookmark");
    const session = new RequestSession(odd.db, OLD, true);
    await session.views.prepare("SELECT list").all();
    await session.primary.prepare("UPDATE").run();
    expect(session.bookmark()).toBe(OLD);
  });
});

describe("bookmarks", () => {
  it("have D1's shape: four hex fields, lower case", () => {
    expect(isBookmark(OLD)).toBe(true);
    expect(isBookmark("00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683")).toBe(true);
    for (const bad of [
      "",
      "garbage",
      "first-primary",
      "first-unconstrained",
      OLD.toUpperCase(),
      `${OLD}0`,
      `x${OLD.slice(1)}`,
      OLD.replaceAll("-", "_"),
      ` ${OLD}`,
    ]) {
      expect(isBookmark(bad), bad).toBe(false);
    }
  });

  it("compare as strings, the later position winning; none is older than any", () => {
    expect(newerBookmark(OLD, NEW)).toBe(NEW);
    expect(newerBookmark(NEW, OLD)).toBe(NEW);
    expect(newerBookmark(MID, NEW)).toBe(NEW);
    expect(newerBookmark(null, OLD)).toBe(OLD);
    expect(newerBookmark(OLD, null)).toBe(OLD);
    expect(newerBookmark(null, null)).toBeNull();
  });
});
