/**
 * Reads the user documentation (README.md, ARCHITECTURE.md and the pages of docs/) and the list of the
 * repository's files in Node, and hands them to test/docs.test.ts (workerd cannot read files).
 */
import { readFileSync, readdirSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { root } from "../../scripts/dev-config.mjs";

/** Folders that hold no documentation nor anything a document links to. */
const SKIPPED = new Set(["node_modules", ".git", ".wrangler", "dist"]);

/** Every file under `dir` (relative to the repository's root, `/`-separated), skipped folders aside. */
function filesUnder(dir: string): string[] {
  return readdirSync(`${root}${dir}`, { withFileTypes: true }).flatMap((entry) => {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory()) return SKIPPED.has(entry.name) ? [] : filesUnder(path);
    return [path];
  });
}

export default function docs(project: TestProject): void {
  const files = filesUnder("");
  const pages = files.filter((path) => /^docs\/[^/]+\.md$/.test(path)).sort();
  const texts = Object.fromEntries(
    ["README.md", "ARCHITECTURE.md", ...pages].map((path) => [path, readFileSync(`${root}${path}`, "utf8")]),
  );
  project.provide("docs", { files, pages, texts });
}

declare module "vitest" {
  export interface ProvidedContext {
    docs: {
      /** Every file of the repository (node_modules, .git and .wrangler aside). */
      files: string[];
      /** The manual's pages: docs/*.md. */
      pages: string[];
      /** The text of README.md, ARCHITECTURE.md and each page, by path. */
      texts: Record<string, string>;
    };
  }
}
