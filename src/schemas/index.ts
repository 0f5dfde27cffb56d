/**
 * Every shape the API accepts or returns, as zod schemas: the single source for request validation,
 * the TypeScript types and the OpenAPI document (schemas with `meta({ id })` become components).
 *
 * Written with `zod/mini` (functional checks: `z.optional(s)`, `s.check(z.maxLength(n))`): the same
 * schemas and parser as classic zod, but tree-shakable, so the Worker bundles only what is used
 * (docs/performance.md, "Bundle size"). Metadata for the document is attached with `.apply(meta({ ... }))`.
 *
 * One module per resource; the message configuration (./messages) is imported first, explicitly,
 * because every schema's messages depend on it.
 */
import "./messages";

export * from "./common";
export * from "./usage";
export * from "./keys";
export * from "./verify";
export * from "./events";
export * from "./leaks";
export * from "./problems";
export * from "./input";
export * from "./owners";
export * from "./root-keys";
export * from "./webhooks";
