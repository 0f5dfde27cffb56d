/**
 * Owner patterns, the owners a root key covers: `user:*` (every person), `workspace:*` (every
 * workspace), or one owner exactly (`user:cust_42`, `workspace:acme`). A wildcard stands alone: no
 * `user:cust_*`. Pure.
 */

/** An owner pattern: the owner type, then `*` or one owner id (no control or invisible characters). */
const OWNER_PATTERN = /^(user|workspace):([^\p{Cc}\p{Cf}\p{Cs}]{1,255})$/u;

/** Why `pattern` is not an owner pattern, or null when it is one. */
export function ownerPatternProblem(pattern: string): string | null {
  const match = OWNER_PATTERN.exec(pattern);
  if (!match) return 'Must be "user:*", "workspace:*", "user:<id>" or "workspace:<id>"';
  const id = match[2] ?? "";
  if (id !== "*" && id.includes("*")) return "A wildcard stands alone: `user:*` or `workspace:*`, never part of an id";
  return null;
}

/** Does `pattern` cover the owner `type`:`id`? */
export function patternCovers(pattern: string, owner: { readonly type: string; readonly id: string }): boolean {
  const colon = pattern.indexOf(":");
  if (pattern.slice(0, colon) !== owner.type) return false;
  const id = pattern.slice(colon + 1);
  return id === "*" || id === owner.id;
}

/**
 * Is every owner `pattern` covers also covered by `patterns`? `user:*` only under `user:*`; one owner
 * under its own pattern or its type's wildcard.
 */
export function patternWithin(pattern: string, patterns: readonly string[]): boolean {
  const colon = pattern.indexOf(":");
  const owner = { type: pattern.slice(0, colon), id: pattern.slice(colon + 1) };
  if (owner.id === "*") return patterns.includes(pattern);
  return patterns.some((p) => patternCovers(p, owner));
}
