/** The opaque list cursor: the (time, id) of the last item of a page, encoded and checked. */
import { UUID_V4 } from "../keys/key-id";
import { ValidationError } from "./errors";

/** The cursor after an item: its time (a key's creation, an event's time) and id. */
export function encodeCursor(time: number, id: string): string {
  return btoa(JSON.stringify([time, id]))
    .replace(/=+$/, "")
    .replace(/\+/g, "-")
    .replace(/\//g, "_");
}

/** The (time, id) a cursor names; a cursor that is not one of ours is a 400 naming `cursor`. */
export function decodeCursor(cursor: string): { time: number; id: string } {
  try {
    const value: unknown = JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/")));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === "string" &&
      UUID_V4.test(value[1])
    ) {
      return { time: value[0] as number, id: value[1] };
    }
  } catch {
    // fall through
  }
  throw new ValidationError({ cursor: ["Invalid cursor: pass next_cursor from a previous page"] }, "query");
}
