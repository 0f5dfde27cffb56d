/**
 * Reads the user documentation (README.md, ARCHITECTURE.md and the pages of docs/), the list of the
 * repository's files and the old README's headings in Node, and hands them to test/project/docs.test.ts (workerd
 * cannot read files).
 */
import { execFileSync } from "node:child_process";
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

/**
 * The `##` and `###` headings of README.md as it was at `commit` (test/readme-map.json), or null when
 * git or the commit is not at hand (a shallow clone): the map is then checked without them.
 */
function oldReadmeHeadings(): string[] | null {
  const { commit } = JSON.parse(readFileSync(`${root}test/readme-map.json`, "utf8")) as { commit: string };
  let text: string;
  try {
    text = execFileSync("git", ["show", `${commit}:README.md`], { cwd: root, encoding: "utf8", stdio: "pipe" });
  } catch {
    return null;
  }
  return text
    .replace(/^```[\s\S]*?^```/gm, "")
    .split("\n")
    .filter((line) => /^#{2,3} /.test(line));
}

export default function docs(project: TestProject): void {
  const files = filesUnder("");
  const pages = files.filter((path) => /^docs\/[^/]+\.md$/.test(path)).sort();
  const texts = Object.fromEntries(
    ["README.md", "ARCHITECTURE.md", ...pages].map((path) => [path, readFileSync(`${root}${path}`, "utf8")]),
  );
  project.provide("docs", { files, pages, texts, oldReadme: oldReadmeHeadings() });
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
      /** The old README's `##` and `###` headings (test/readme-map.json), or null without git history. */
      oldReadme: string[] | null;
    };
  }
}
