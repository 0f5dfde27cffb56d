// npm run openapi [-- <file>]: writes the OpenAPI document the Worker serves at /openapi.json (built
// from the same route list and zod schemas, bundled for Node with esbuild) to <file>, by default
// .wrangler/openapi.json, with every dialect mounted (the default DIALECTS). `npm run lint:openapi`
// lints that file with Redocly's recommended rules.
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { root } from "./dev-config.mjs";

const target = resolve(root, process.argv[2] ?? ".wrangler/openapi.json");

const bundle = await build({
  stdin: {
    contents: `import { routes } from "./src/http/routes"; import { openApiDocument } from "./src/http/openapi";
      import { DIALECT_NAMES } from "./src/config"; import { dialectRoutes } from "./src/http/dialects";
      export const document = openApiDocument([...routes, ...dialectRoutes(DIALECT_NAMES)]);`,
    resolveDir: root,
    loader: "ts",
  },
  bundle: true,
  write: false,
  format: "esm",
  platform: "node",
  external: ["cloudflare:*"],
  logLevel: "warning",
});
const { document } = await import(
  `data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString("base64")}`
);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, `${JSON.stringify(document, null, 2)}\n`);
console.log(`OpenAPI document written to ${target}`);
