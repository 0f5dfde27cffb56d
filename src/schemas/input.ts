/** Parsing input with the schemas: zod's issues as field issues with kinds, and the "__proto__" guard. */
import * as z from "zod/mini";
import type { FieldIssue, IssueKind } from "../problems";

/** The kind of a zod issue (zod keeps the input on issues only when asked: see parseInput). */
function issueKind(issue: z.core.$ZodIssue): IssueKind {
  if ("input" in issue && issue.input === undefined) return "required";
  switch (issue.code) {
    case "invalid_type":
      return "type";
    case "too_small":
      return "too_small";
    case "too_big":
      return "too_big";
    case "invalid_format":
      return "format";
    case "invalid_value":
      return "enum";
    case "unrecognized_keys":
      return "unknown_key";
    default:
      return "invalid";
  }
}

/** The issues of a zod error, by field: `{ field: "scopes.0", kind: "format", message: "..." }`. */
export function fieldIssues(error: z.core.$ZodError): FieldIssue[] {
  const out: FieldIssue[] = [];
  const fieldOf = (path: PropertyKey[]) => (path.length ? path.map(String).join(".") : "body");
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys)
        out.push({ field: fieldOf([...issue.path, key]), kind: "unknown_key", message: "Unknown field" });
    } else {
      out.push({ field: fieldOf(issue.path), kind: issueKind(issue), message: issue.message });
    }
  }
  return out;
}

/**
 * `value` parsed by `schema`, or its field issues. Issues keep the input so a missing field tells
 * itself from a wrong one; the input goes no further than `issueKind`.
 */
export function parseInput<S extends z.ZodMiniType>(
  schema: S,
  value: unknown,
): { success: true; data: z.output<S> } | { success: false; issues: FieldIssue[] } {
  const result = schema.safeParse(value, { reportInput: true });
  return result.success ? { success: true, data: result.data } : { success: false, issues: fieldIssues(result.error) };
}

/**
 * The path of the first "__proto__" key in a parsed input (a JSON body, an RPC argument), or null.
 * JSON.parse and structured clone make it an own key, which any object copy (zod's included) silently
 * drops: refuse it rather than store something other than what was sent. Iterative, as bodies may
 * nest thousands of levels deep.
 */
export function reservedKeyPath(value: unknown): string | null {
  const pending: [unknown, string][] = [[value, ""]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [node, path] = next;
    if (typeof node !== "object" || node === null) continue;
    for (const key of Object.keys(node)) {
      const at = path ? `${path}.${key}` : key;
      if (key === "__proto__") return at;
      pending.push([(node as Record<string, unknown>)[key], at]);
    }
  }
  return null;
}
