/**
 * Reads wrangler.toml's deployments ([vars], [env.staging], [env.production]) and the configuration
 * table of docs/configuration.md in Node and hands them to test/project/deploy-config.test.ts (workerd cannot
 * read files).
 */
import { readFileSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { root, wranglerEnv, wranglerTopLevel, wranglerVars } from "../../scripts/dev-config.mjs";

/** The rows of docs/configuration.md's "## Every setting" table: each setting and where it is set. */
function documentedSettings(): { name: string; where: string }[] {
  const page = readFileSync(`${root}docs/configuration.md`, "utf8");
  const section = /^## Every setting\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(page)?.[1] ?? "";
  return [...section.matchAll(/^\| `([A-Z0-9_]+)`\s*\| ([^|]*?)\s*\|/gm)].map((m) => ({ name: m[1]!, where: m[2]! }));
}

export default function deployConfig(project: TestProject): void {
  project.provide("deployConfig", {
    vars: wranglerVars(),
    topLevel: wranglerTopLevel(),
    envs: { staging: wranglerEnv("staging"), production: wranglerEnv("production") },
    documented: documentedSettings(),
  });
}

interface Queues {
  producers: string[];
  consumers: string[];
}

interface DeployEnv {
  vars: Record<string, string>;
  bindings: string[];
  namespaceIds: string[];
  queues: Queues;
}

declare module "vitest" {
  export interface ProvidedContext {
    deployConfig: {
      vars: Record<string, string>;
      topLevel: { bindings: string[]; optional: string[]; namespaceIds: string[]; queues: Queues };
      envs: { staging: DeployEnv | null; production: DeployEnv | null };
      documented: { name: string; where: string }[];
    };
  }
}
