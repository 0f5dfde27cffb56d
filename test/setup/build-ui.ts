/**
 * Builds the keys page's files from ui/ in memory before the tests start and hands them to the tests
 * (inject("uiAssets")), so test/http/ui.test.ts can fail when the committed src/http/ui-assets.generated.ts
 * is stale: workerd cannot run esbuild itself. Also hands over wrangler.toml's [vars] as written
 * (the test env mixes in .dev.vars), so a test can check what a deployment gets.
 */
import type { TestProject } from "vitest/node";
import { buildUiAssets } from "../../scripts/build-ui.mjs";
import { wranglerVars } from "../../scripts/dev-config.mjs";

export default async function buildUi(project: TestProject): Promise<void> {
  project.provide("uiAssets", await buildUiAssets());
  project.provide("wranglerVars", wranglerVars());
}

declare module "vitest" {
  export interface ProvidedContext {
    uiAssets: { name: string; type: string; hash: string; body: string }[];
    wranglerVars: Record<string, string>;
  }
}
