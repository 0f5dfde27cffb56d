// Shared by the benchmark scripts: what machine and versions a run used, and writing one script's
// section of bench/RESULTS.md without touching the rest (the hand-written notes stay as they are).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import * as prettier from "prettier";
import { root } from "../scripts/dev-config.mjs";

export const resultsPath = `${root}bench/RESULTS.md`;

const HEADER = `# Benchmark results

Written by \`npm run bench\` (HTTP, through wrangler dev) and \`npm run bench:verify\` (the verification
function and the router, in workerd and in Node). Each script replaces only its own section below; the notes are kept.
`;

/** The version of `pkg` as `within` (a package that may hold its own copy) resolves it. */
function version(pkg, within = null) {
  const places = [...(within ? [`node_modules/${within}/node_modules/${pkg}`] : []), `node_modules/${pkg}`];
  for (const place of places) {
    try {
      return JSON.parse(readFileSync(`${root}${place}/package.json`, "utf8")).version;
    } catch {
      // not there: try the next place
    }
  }
  return "?";
}

function commit() {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: root, encoding: "utf8" }).trim();
    return dirty ? `${head} (src modified)` : head;
  } catch {
    return "?";
  }
}

/** A markdown list describing the run: date, machine, versions and the command. */
export function runInfo(command) {
  const cpus = os.cpus();
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus[0]?.model.trim() ?? "unknown CPU"}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GB, ${os.platform()} ${os.release()}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} at start`,
    `- Versions: Node ${process.versions.node}, wrangler ${version("wrangler")}, workerd ${version("workerd", "wrangler")} (wrangler dev's), miniflare ${version("miniflare")}, autocannon ${version("autocannon")}, esbuild ${version("esbuild")}; latchkey ${commit()}`,
    `- Command: \`${command}\``,
  ].join("\n");
}

/** Replaces the section `id` of bench/RESULTS.md (between its markers), or appends it; formats the file. */
export async function writeSection(id, markdown) {
  const start = `<!-- bench:${id} -->`;
  const end = `<!-- /bench:${id} -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  let text = existsSync(resultsPath) ? readFileSync(resultsPath, "utf8") : HEADER;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from !== -1 && to > from) text = text.slice(0, from) + block + text.slice(to + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  const options = (await prettier.resolveConfig(resultsPath)) ?? {};
  writeFileSync(resultsPath, await prettier.format(text, { ...options, filepath: resultsPath }));
}

/** A markdown table from a header row and data rows. */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export const costsPath = `${root}bench/costs.json`;

/**
 * Replaces the section `id` of bench/costs.json: the per-operation costs the capacity model
 * (bench/simulate.mjs) reads, each with the run that measured it (date, command, load average).
 */
export function writeCosts(id, costs, command) {
  const all = existsSync(costsPath) ? JSON.parse(readFileSync(costsPath, "utf8")) : {};
  all[id] = {
    measuredAt: new Date().toISOString(),
    command,
    loadAverage: os.loadavg().map((l) => +l.toFixed(2)),
    cores: os.availableParallelism(),
    ...costs,
  };
  writeFileSync(costsPath, `${JSON.stringify(all, null, 2)}\n`);
}
