/**
 * Scope and resource rules, pure functions shared by verification and by attenuation checks.
 *
 * A scope is lowercase `resource:action` (more `:segments` allowed), `resource:*` (every action of that
 * resource, including deeper ones), or `*` (everything). A key's `resources` list limits it to those
 * resource ids; `null` means every resource.
 */

export const SCOPE_PATTERN = /^(?:\*|[a-z][a-z0-9_-]*(?::[a-z][a-z0-9_-]*)*:(?:\*|[a-z][a-z0-9_-]*))$/;

/** Does the granted `pattern` cover `scope` (which may itself be a wildcard)? */
export function covers(pattern: string, scope: string): boolean {
  if (pattern === "*" || pattern === scope) return true;
  return pattern.endsWith(":*") && scope.startsWith(pattern.slice(0, -1));
}

/** Does a key holding `granted` have `scope`? */
export function grants(granted: readonly string[], scope: string): boolean {
  for (const pattern of granted) if (covers(pattern, scope)) return true;
  return false;
}

/** The first of `requested` that `granted` does not cover, or undefined when all are covered. */
export function firstUncovered(granted: readonly string[], requested: readonly string[]): string | undefined {
  return requested.find((scope) => !grants(granted, scope));
}

export function resourceAllowed(resources: readonly string[] | null, resource: string): boolean {
  return resources === null || resources.includes(resource);
}

/** Is `child` (null = all) within `parent` (null = all)? */
export function resourcesWithin(parent: readonly string[] | null, child: readonly string[] | null): boolean {
  if (parent === null) return true;
  return child !== null && child.every((r) => parent.includes(r));
}
