/**
 * Every validation message in plain words a client can show to a person, configured once for zod.
 * This module's one job is that global side effect (`z.config`); the index imports it before any
 * schema, so no message is ever zod's own.
 */
import * as z from "zod/mini";

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "an array",
  object: "an object",
  record: "an object",
};

const count = (n: number | bigint, one: string, many: string) => `${n} ${n === 1 || n === 1n ? one : many}`;

/**
 * Every validation message in plain words a client can show to a person ("Must be a string", "Must
 * have at most 50 items"), never a library's internals (its type names, what it received). Fields
 * with their own wording (limits, patterns) set it on the schema, which takes precedence.
 */
function plainMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "Required";
      if (issue.input === null) return "Must not be null";
      return `Must be ${TYPE_WORDS[issue.expected] ?? issue.expected}`;
    case "too_small":
      if (issue.origin === "string") return `Must be at least ${count(issue.minimum, "character", "characters")}`;
      if (issue.origin === "array" || issue.origin === "set")
        return `Must have at least ${count(issue.minimum, "item", "items")}`;
      return `Must be at least ${issue.minimum}`;
    case "too_big":
      if (issue.origin === "string") return `Must be at most ${count(issue.maximum, "character", "characters")}`;
      if (issue.origin === "array" || issue.origin === "set")
        return `Must have at most ${count(issue.maximum, "item", "items")}`;
      return `Must be at most ${issue.maximum}`;
    case "invalid_format":
      if (issue.format === "datetime")
        return "Must be an RFC 3339 date-time with a time zone, e.g. 2027-01-31T12:00:00Z";
      if (issue.format === "uuid") return "Must be a UUID";
      return "Has the wrong format";
    case "invalid_value":
      return `Must be one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return "Unknown field";
    default:
      return "Is invalid";
  }
}

z.config({ customError: plainMessage });
