/**
 * The documentation's shape: README.md is a short front door whose links into docs/ all resolve, every
 * page of docs/ opens by saying what it answers and is reachable from the README, every relative link
 * and anchor of README.md, ARCHITECTURE.md and docs/ points at something that exists, and no document
 * speaks in issue numbers (history belongs in CHANGELOG.md).
 */
import { describe, expect, inject, it } from "vitest";
import readmeMap from "../readme-map.json";

const { files, pages, texts, oldReadme } = inject("docs");
const README_MAX_LINES = 300;
const README_MAX_WIDTH = 160;

/** The text outside fenced code blocks (links and headings in code are not links nor headings). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "");
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped (but `-` and `_`), spaces to `-`. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(heading!);
    const count = seen.get(base) ?? 0;
    anchors.add(count === 0 ? base : `${base}-${count}`);
    seen.set(base, count + 1);
  }
  return anchors;
}

/** The relative link targets of a document: `[text](target)`, external and mail links aside. */
function linksOf(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

/** `docs/api.md` + `../../bench/RESULTS.md` → `bench/RESULTS.md`. */
function resolve(from: string, target: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of target.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "." && part !== "") parts.push(part);
  }
  return parts.join("/");
}

describe("README.md, the front door", () => {
  const readme = texts["README.md"]!;
  const lines = readme.replace(/\n$/, "").split("\n");

  it(`stays within ${README_MAX_LINES} lines of at most ${README_MAX_WIDTH} characters`, () => {
    expect(lines.length).toBeLessThanOrEqual(README_MAX_LINES);
    expect(lines.filter((line) => [...line].length > README_MAX_WIDTH)).toEqual([]);
  });

  it("keeps the two commands", () => {
    expect(readme).toMatch(/^npm install && npm start\b/m);
    expect(readme).toMatch(/^npm install && npm test\b/m);
  });

  it("links every page of docs/, and every docs/ link it holds resolves", () => {
    expect(pages.length).toBeGreaterThan(10); // the pages were read
    const linked = linksOf(readme)
      .map((target) => target.split("#")[0]!)
      .filter((path) => path.startsWith("docs/"));
    for (const path of linked) expect(files, path).toContain(path);
    for (const page of pages) expect(linked, page).toContain(page);
  });
});

describe("the manual (docs/) and ARCHITECTURE.md", () => {
  it.each(pages)("%s opens with a title, then a sentence saying what it answers", (page) => {
    const [title, blank, first, second = ""] = texts[page]!.split("\n");
    expect(title).toMatch(/^# \S/);
    expect(blank).toBe("");
    // Prose: not a heading, table, list, quote, image or code; a sentence within its first two lines.
    expect(first).toMatch(/^[A-Z`*]/);
    expect(first).not.toMatch(/^(#|\||- |> |!\[|```)/);
    expect(`${first} ${second}`).toMatch(/[.:?](\s|$)/);
  });

  it.each(Object.keys(texts))("%s: every relative link and anchor resolves", (from) => {
    for (const target of linksOf(texts[from]!)) {
      const [path, anchor] = target.split("#") as [string, string | undefined];
      const file = path === "" ? from : resolve(from, path);
      expect(files, `${from} → ${target}`).toContain(file);
      if (anchor !== undefined && file.endsWith(".md")) {
        const text = texts[file];
        expect(text, `${from} → ${target}: a page the test reads`).toBeDefined();
        expect([...anchorsOf(text!)], `${from} → ${target}`).toContain(anchor);
      }
    }
  });

  it.each(Object.keys(texts))("%s speaks in the present: no issue numbers", (path) => {
    expect(texts[path]!).not.toMatch(/\bissues? #?\d+/i);
    expect(texts[path]!).not.toMatch(/(^|\s)#\d+\b/m);
  });
});

describe("every section of the old README has a home (test/readme-map.json)", () => {
  const olds = readmeMap.sections.map((section) => section.old);

  it("lists each ## and ### heading of the old README once, in order", () => {
    expect(new Set(olds).size).toBe(olds.length);
    for (const old of olds) expect(old).toMatch(/^#{2,3} \S/);
    // Where git has the commit (not in a shallow clone), the list is exactly the old README's headings.
    if (oldReadme !== null) expect(olds).toEqual(oldReadme);
  });

  const homes = readmeMap.sections.flatMap(({ old, homes }) => homes.map(([file, heading]) => [old, file!, heading!]));
  it.each(homes)("%s → %s, %s", (_old, file, heading) => {
    expect(files).toContain(file);
    expect(texts[file], `${file}: a page the test reads`).toBeDefined();
    expect(prose(texts[file]!).split("\n")).toContain(heading);
  });
});
