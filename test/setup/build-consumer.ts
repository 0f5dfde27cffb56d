/**
 * Bundles the example consumer (examples/consumer) before the tests start: auxiliary Workers run
 * as they are, not through Vite, so its TypeScript must be compiled to one ES module first.
 */
import { build } from "esbuild";
import { CONSUMER_BUNDLE } from "./paths";

export default async function buildConsumer(): Promise<void> {
  await build({
    entryPoints: ["examples/consumer/src/index.ts"],
    outfile: CONSUMER_BUNDLE,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    external: ["cloudflare:*"],
    logLevel: "warning",
  });
}
