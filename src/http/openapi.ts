/**
 * The OpenAPI document the Worker serves at /openapi.json. It is built at build time from the routes
 * and zod schemas (openapi-build.ts; `npm run openapi -- --generate` commits it as
 * openapi.generated.ts) with every dialect mounted, so the Worker carries no document generator
 * (docs/performance.md, "Bundle size"). Here it is parsed on first use and cut down to the routes this deployment
 * serves (DIALECTS decides which): their operations, their tags and the components they reference.
 */
import { OPENAPI_JSON } from "./openapi.generated";
import type { Route } from "./route";

type Components = Record<string, Record<string, unknown>>;

/** The parts of the document this module reads; the rest is passed through. */
export interface OpenApiJson {
  readonly openapi: string;
  readonly tags: readonly { readonly name: string }[];
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly components: Components;
  readonly [member: string]: unknown;
}

interface Operation {
  readonly operationId?: string;
  readonly tags?: readonly string[];
}

/** Every `$ref` to a component: `#/components/<section>/<name>`. */
const COMPONENT_REF = /"#\/components\/([A-Za-z]+)\/([^"]+)"/g;

/** One document per route list (built once per isolate). */
const cached = new WeakMap<readonly Route[], OpenApiJson>();

export function openApiDocument(routes: readonly Route[]): OpenApiJson {
  let document = cached.get(routes);
  if (!document) {
    document = servedPart(JSON.parse(OPENAPI_JSON) as OpenApiJson, routes);
    cached.set(routes, document);
  }
  return document;
}

/** `full` with only the operations of `routes`, and the tags and components those use. */
function servedPart(full: OpenApiJson, routes: readonly Route[]): OpenApiJson {
  const served = new Set(routes.map((route) => route.operationId));
  const paths: Record<string, Record<string, Operation>> = {};
  const tags = new Set<string>();
  for (const [path, item] of Object.entries(full.paths)) {
    const kept = Object.entries(item).filter(([, op]) => op.operationId !== undefined && served.has(op.operationId));
    if (kept.length === 0) continue;
    paths[path] = Object.fromEntries(kept);
    for (const [, op] of kept) for (const tag of op.tags ?? []) tags.add(tag);
  }
  // The components reachable from the kept operations, following references between components.
  const used = new Set<string>();
  const pending = [JSON.stringify(paths)];
  for (let text = pending.pop(); text !== undefined; text = pending.pop()) {
    for (const [, section = "", name = ""] of text.matchAll(COMPONENT_REF)) {
      const component = full.components[section]?.[name];
      if (component === undefined || used.has(`${section}/${name}`)) continue;
      used.add(`${section}/${name}`);
      pending.push(JSON.stringify(component));
    }
  }
  const components: Components = {};
  for (const [section, entries] of Object.entries(full.components)) {
    // Security schemes are named by operations' `security`, not referenced: all are kept.
    components[section] =
      section === "securitySchemes"
        ? entries
        : Object.fromEntries(Object.entries(entries).filter(([name]) => used.has(`${section}/${name}`)));
  }
  return { ...full, tags: full.tags.filter((tag) => tags.has(tag.name)), paths, components };
}
