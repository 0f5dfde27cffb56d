#!/usr/bin/env node
/**
 * Mutation testing: proves the test suite fails when the code is wrong. Each mutant in
 * test/mutants.json plants one realistic single-line bug in src/; this script applies it to a scratch
 * copy of the repository (never the working tree), runs the test files the mutant names in workerd
 * (vitest, the project's own config), and records whether a test failed ("killed") or all passed
 * ("survived"). A survivor is a bug the suite cannot see. How to add a mutant: DEVELOPING.md.
 *
 * A mutant finds its line by an exact snippet that must occur exactly once in its file, not by line
 * number, so the list survives edits elsewhere in the file. A snippet that no longer matches is STALE:
 * the run reports it and fails, so the list is kept current as the code changes.
 *
 * Usage: npm run mutate -- [--only id,id] [--fast] [--list] [--jobs N] [--timeout S] [--threshold P]
 *                          [--no-baseline] [--all-failures] [--markdown FILE]
 *
 * --all-failures runs every named test instead of stopping at the first failure, so the table shows how
 * many tests catch each mutant (slower; for checking that a rule is guarded twice).
 */
import { spawn } from "node:child_process";
import { cp, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const ROOT = resolve(fileURLToPath(import.meta.url), "../..");
const MUTANTS_FILE = join(ROOT, "test/mutants.json");
/**
 * What a scratch copy leaves out: node_modules is linked instead, and build output, local state and
 * local secrets (.dev.vars) are not needed by the tests. Everything else is copied, so a test that
 * reads a new top-level file or folder finds it.
 */
const NOT_COPIED = new Set([".git", "node_modules", ".wrangler", "dist", ".dev.vars"]);
/**
 * Two scratch copies in parallel: measured on the 2-core machine (busy with other work), 2 jobs made
 * 62 mutants in 36.8 min (36 s per mutant), 1 job about 95 s per mutant under the same load.
 */
const DEFAULTS = { jobs: 2, timeout: 240, threshold: 90 };
const TEST_TIMEOUT_MS = 60_000;

function parseArgs(argv) {
  const options = { ...DEFAULTS, only: null, fast: false, all: false, list: false, baseline: true, markdown: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) usage(`${arg} needs a value`);
      return next;
    };
    if (arg === "--only") options.only = value().split(",").filter(Boolean);
    else if (arg === "--fast") options.fast = true;
    else if (arg === "--list") options.list = true;
    else if (arg === "--no-baseline") options.baseline = false;
    else if (arg === "--all-failures") options.all = true;
    else if (arg === "--jobs") options.jobs = positive(arg, value());
    else if (arg === "--timeout") options.timeout = positive(arg, value());
    else if (arg === "--threshold") options.threshold = positive(arg, value());
    else if (arg === "--markdown") options.markdown = resolve(value());
    else usage(`unknown option ${arg}`);
  }
  return options;
}

function positive(name, text) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) usage(`${name} must be a positive number`);
  return n;
}

function usage(problem) {
  console.error(`mutate: ${problem}`);
  console.error(
    "usage: npm run mutate -- [--only id,id] [--fast] [--list] [--jobs N] [--timeout S] [--threshold P] [--no-baseline] [--all-failures] [--markdown FILE]",
  );
  process.exit(2);
}

/** Checks the list's own shape: a broken entry is a mistake in the list, reported before anything runs. */
function checkShape(mutants) {
  const problems = [];
  const ids = new Set();
  for (const [i, m] of mutants.entries()) {
    const where = `mutant #${i} (${m.id ?? "no id"})`;
    for (const field of ["id", "file", "rule", "bug", "find", "replace"]) {
      if (typeof m[field] !== "string" || m[field] === "")
        problems.push(`${where}: "${field}" must be a non-empty string`);
    }
    if (!Array.isArray(m.tests) || m.tests.length === 0) problems.push(`${where}: "tests" must list test files`);
    if (ids.has(m.id)) problems.push(`${where}: duplicate id`);
    ids.add(m.id);
    if (m.equivalent !== undefined && (typeof m.equivalent !== "string" || m.equivalent === "")) {
      problems.push(`${where}: "equivalent" must be the reason, in words`);
    }
    if (typeof m.find === "string" && typeof m.replace === "string") {
      const a = m.find.split("\n");
      const b = m.replace.split("\n");
      const changed = a.filter((line, j) => line !== b[j]).length;
      if (a.length !== b.length || changed !== 1) {
        problems.push(`${where}: "find" and "replace" must differ in exactly one line`);
      }
    }
  }
  return problems;
}

/**
 * Where the mutant applies in the current source: the 1-based line it changes, or why it is STALE
 * (its snippet is missing, or occurs more than once).
 */
function locate(mutant, source) {
  const at = source.indexOf(mutant.find);
  if (at === -1) return { stale: "snippet not found" };
  if (source.indexOf(mutant.find, at + 1) !== -1) return { stale: "snippet occurs more than once" };
  const findLines = mutant.find.split("\n");
  const offset = findLines.findIndex((line, j) => line !== mutant.replace.split("\n")[j]);
  const line = source.slice(0, at).split("\n").length + offset;
  return { line, mutated: source.slice(0, at) + mutant.replace + source.slice(at + mutant.find.length) };
}

const scratchDirs = new Set();
const children = new Set();

async function makeScratch() {
  const dir = await mkdtemp(join(tmpdir(), "latchkey-mutate-"));
  scratchDirs.add(dir);
  for (const entry of await readdir(ROOT)) {
    if (NOT_COPIED.has(entry)) continue;
    // Nested node_modules (a workspace package's) are left out too: Node finds the root's through the link.
    const filter = (path) => !/[\\/](?:node_modules|\.wrangler)(?:[\\/]|$)/.test(path.slice(ROOT.length));
    await cp(join(ROOT, entry), join(dir, entry), { recursive: true, filter });
  }
  await symlink(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

async function cleanup() {
  for (const child of children) killTree(child);
  await Promise.all([...scratchDirs].map((dir) => rm(dir, { recursive: true, force: true })));
  scratchDirs.clear();
}

function killTree(child) {
  try {
    process.kill(-child.pid, "SIGKILL"); // the whole group: vitest and its workerd processes
  } catch {
    // already gone
  }
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    // A copy still in progress keeps writing after the first removal: remove again once it has stopped.
    const settle = () => new Promise((done) => setTimeout(done, 500));
    cleanup()
      .then(settle)
      .then(cleanup)
      .finally(() => process.exit(130));
  });
}

/**
 * Runs `files` with vitest in `dir`, stopping at the first failing test unless `all`. Returns
 * { outcome: "passed" | "failed" | "timeout" | "error", failed: test name or null, failures: how many
 * tests failed, detail, seconds }.
 */
async function runTests(dir, files, timeoutSeconds, all = false) {
  const report = join(dir, ".mutate-report.json");
  await rm(report, { force: true });
  const started = Date.now();
  // A generous per-test timeout: a busy machine must not pass for a kill (hangs are cut by `timeoutSeconds`).
  const args = [
    "vitest",
    "run",
    ...(all ? [] : ["--bail=1"]),
    `--testTimeout=${TEST_TIMEOUT_MS}`,
    "--reporter=json",
    `--outputFile=${report}`,
    ...files,
  ];
  const child = spawn("npx", args, {
    cwd: dir,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      // The scratch copy is not beside the clone: point the tests at the clone's shared reference.
      LATCHKEY_SHARED_DIR: process.env.LATCHKEY_SHARED_DIR ?? resolve(ROOT, "../shared"),
      WRANGLER_SEND_METRICS: "false",
      CI: "1",
      NO_COLOR: "1",
    },
  });
  children.add(child);
  let output = "";
  const keep = (chunk) => {
    output = (output + chunk).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killTree(child);
  }, timeoutSeconds * 1000);
  const code = await new Promise((done) => child.on("close", done));
  clearTimeout(timer);
  children.delete(child);
  killTree(child); // workerd children that outlived vitest
  const seconds = (Date.now() - started) / 1000;
  if (timedOut) return { outcome: "timeout", failed: null, detail: `no answer in ${timeoutSeconds} s`, seconds };

  let json = null;
  try {
    json = JSON.parse(await readFile(report, "utf8"));
  } catch {
    // no report: vitest could not start; the output says why
  }
  if (!json) return { outcome: "error", failed: null, detail: lastLines(output), seconds };
  const failedTests = (json.testResults ?? []).flatMap((file) =>
    (file.assertionResults ?? []).filter((t) => t.status === "failed").map((t) => ({ file, test: t })),
  );
  if (failedTests.length > 0) {
    const { file, test } = failedTests[0];
    const more = failedTests.length > 1 ? ` (and ${failedTests.length - 1} more)` : "";
    const failed = `${relative(dir, file.name)} > ${test.fullName}${more}`;
    return {
      outcome: "failed",
      failed,
      failures: failedTests.length,
      detail: firstLine(test.failureMessages?.[0]),
      seconds,
    };
  }
  for (const file of json.testResults ?? []) {
    if (file.status === "failed") {
      // The file failed outside any test (it could not load, or a hook threw).
      return {
        outcome: "failed",
        failed: `${relative(dir, file.name)} (${firstLine(file.message)})`,
        detail: "",
        seconds,
      };
    }
  }
  if (code !== 0 || json.success === false || json.numTotalTests === 0) {
    return { outcome: "error", failed: null, detail: lastLines(output), seconds };
  }
  return { outcome: "passed", failed: null, detail: "", seconds };
}

const relative = (dir, path) => (path.startsWith(dir) ? path.slice(dir.length + 1) : path);
const firstLine = (text) =>
  String(text ?? "failed")
    .split("\n")[0]
    .slice(0, 120);
const lastLines = (text) => text.trim().split("\n").slice(-8).join("\n");

/** Applies one mutant in `dir`, runs its tests, restores the file. */
async function runMutant(dir, mutant, original, timeout, all) {
  const path = join(dir, mutant.file);
  const { mutated } = locate(mutant, original);
  try {
    // A mutant that does not parse tests nothing: report it as an error in the list, not as killed.
    // (TypeScript and JavaScript only: a migration's SQL is parsed by D1 when the tests apply it, and
    // the Python and PHP packages' sources are read as text by test/clients/guard-ports.test.ts.)
    if (/\.(?:[cm]?[jt]s)$/.test(mutant.file))
      await transform(mutated, { loader: /\.[cm]?ts$/.test(mutant.file) ? "ts" : "js" });
  } catch (error) {
    return {
      outcome: "error",
      failed: null,
      detail: `the mutated file does not parse: ${firstLine(error.message)}`,
      seconds: 0,
    };
  }
  await writeFile(path, mutated);
  try {
    return await runTests(dir, mutant.tests, timeout, all);
  } finally {
    await writeFile(path, original);
  }
}

function verdict(mutant, result) {
  if (mutant.stale) return "STALE";
  if (mutant.equivalent) return "equivalent";
  if (!result) return "-";
  if (result.outcome === "failed") return "killed";
  if (result.outcome === "timeout") return "killed (timeout)";
  if (result.outcome === "passed") return "SURVIVED";
  return "ERROR";
}

function table(rows) {
  const header = ["mutant", "where", "rule", "result", "killed by / note", "s"];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map(({ mutant, result }) => {
      const note = mutant.stale
        ? `STALE: ${mutant.stale}`
        : mutant.equivalent
          ? `equivalent: ${mutant.equivalent}`
          : result?.outcome === "timeout"
            ? `timed out: ${result.detail}`
            : (result?.failed ?? result?.detail?.replace(/\n/g, " ") ?? "");
      const where = mutant.line ? `${mutant.file}:${mutant.line}` : mutant.file;
      const seconds = result ? result.seconds.toFixed(0) : "";
      return `| ${[mutant.id, where, mutant.rule, verdict(mutant, result), note.replace(/\|/g, "\\|"), seconds].join(" | ")} |`;
    }),
  ];
  return lines.join("\n");
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const all = JSON.parse(await readFile(MUTANTS_FILE, "utf8"));
  const shape = checkShape(all);
  if (shape.length > 0) {
    console.error(`mutate: test/mutants.json is invalid:\n  ${shape.join("\n  ")}`);
    process.exit(2);
  }
  let selected = all;
  if (options.only) {
    const unknown = options.only.filter((id) => !all.some((m) => m.id === id));
    if (unknown.length > 0) usage(`no mutant named ${unknown.join(", ")}`);
    selected = all.filter((m) => options.only.includes(m.id));
  } else if (options.fast) {
    selected = all.filter((m) => m.fast);
  }

  const sources = new Map();
  for (const mutant of selected) {
    if (!sources.has(mutant.file)) {
      sources.set(mutant.file, await readFile(join(ROOT, mutant.file), "utf8").catch(() => null));
    }
    const source = sources.get(mutant.file);
    Object.assign(mutant, source === null ? { stale: "file not found" } : locate(mutant, source));
    delete mutant.mutated;
  }
  const stale = selected.filter((m) => m.stale);

  if (options.list) {
    console.log(table(selected.map((mutant) => ({ mutant, result: null }))));
    for (const m of selected)
      console.log(`\n${m.id} (${m.rule}): ${m.bug}${m.equivalent ? ` [equivalent: ${m.equivalent}]` : ""}`);
    if (stale.length > 0) failStale(stale);
    return;
  }
  if (stale.length > 0) failStale(stale);

  const toRun = selected.filter((m) => !m.equivalent);
  const source = await revision();
  const started = Date.now();
  const jobs = Math.min(Math.max(1, Math.floor(options.jobs)), Math.max(1, toRun.length));
  console.log(
    `mutate: ${toRun.length} mutants to run (and ${selected.length - toRun.length} equivalent, listed only), ${jobs} job(s)`,
  );
  const dirs = [];
  for (let j = 0; j < jobs; j++) {
    dirs.push(await makeScratch());
  }

  try {
    if (options.baseline) {
      // The unmutated code must pass every file the mutants use, or a "kill" proves nothing.
      const files = [...new Set(toRun.flatMap((m) => m.tests))].sort();
      console.log(`mutate: baseline (unmutated) run of ${files.length} test files...`);
      const base = await runTests(dirs[0], files, options.timeout * 2);
      if (base.outcome !== "passed") {
        console.error(`mutate: the baseline fails, so no result would mean anything: ${base.failed ?? ""}`);
        console.error(base.detail);
        process.exitCode = 1;
        return;
      }
      console.log(`mutate: baseline passed in ${base.seconds.toFixed(0)} s`);
    }

    const results = new Map();
    let next = 0;
    const worker = async (dir) => {
      while (next < toRun.length) {
        const mutant = toRun[next++];
        const result = await runMutant(dir, mutant, sources.get(mutant.file), options.timeout, options.all);
        results.set(mutant.id, result);
        const done = results.size;
        console.log(
          `[${done}/${toRun.length}] ${mutant.id}: ${verdict(mutant, result)} (${result.seconds.toFixed(0)} s)`,
        );
      }
    };
    await Promise.all(dirs.map(worker));

    const rows = selected.map((mutant) => ({ mutant, result: results.get(mutant.id) ?? null }));
    const counted = rows.filter(({ mutant }) => !mutant.equivalent);
    const killed = counted.filter(({ result }) => result && ["failed", "timeout"].includes(result.outcome));
    const survived = counted.filter(({ result }) => result?.outcome === "passed");
    const errors = counted.filter(({ result }) => result?.outcome === "error");
    const rate = counted.length === 0 ? 100 : (100 * killed.length) / counted.length;
    const minutes = ((Date.now() - started) / 60_000).toFixed(1);
    const summary =
      `Kill rate: ${rate.toFixed(1)}% (${killed.length} killed of ${counted.length}; ` +
      `${survived.length} survived, ${errors.length} errors, ${selected.length - counted.length} equivalent excluded); ` +
      `${minutes} min with ${jobs} job(s)`;
    const text = table(rows);
    console.log(`\n${text}\n\n${summary}`);
    for (const { mutant } of survived) console.log(`SURVIVED ${mutant.id}: ${mutant.bug}`);
    for (const { mutant, result } of errors) console.log(`ERROR ${mutant.id}: ${result.detail}`);
    if (options.markdown) await writeFile(options.markdown, markdown(text, summary, options, source));
    if (errors.length > 0 || rate < options.threshold) {
      console.error(`mutate: FAILED (threshold ${options.threshold}%${errors.length ? "; errors above" : ""})`);
      process.exitCode = 1;
    }
  } finally {
    await cleanup();
  }
}

function failStale(stale) {
  console.error("\nmutate: STALE mutants (their snippet no longer matches exactly once; update test/mutants.json):");
  for (const m of stale) console.error(`  STALE ${m.id} in ${m.file}: ${m.stale}`);
  process.exit(1);
}

/** The output of `git <args>` in the repository, trimmed ("" when git fails). */
function git(args) {
  return new Promise((done) => {
    const child = spawn("git", args, { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("close", () => done(out.trim()));
    child.on("error", () => done(""));
  });
}

/** The commit the scratch copies are made from, taken when the run starts (the tree may change meanwhile). */
async function revision() {
  const commit = (await git(["rev-parse", "--short", "HEAD"])) || "unknown";
  const dirty = (await git(["status", "--porcelain", "src", "test", "examples", "migrations"])) !== "";
  return { commit, dirty, at: new Date().toISOString() };
}

function markdown(text, summary, options, source) {
  const flags = [
    options.fast ? "--fast" : null,
    options.only ? `--only ${options.only.join(",")}` : null,
    `--jobs ${options.jobs}`,
    options.baseline ? null : "--no-baseline",
  ].filter(Boolean);
  return [
    "# Mutation run",
    "",
    `Generated by \`npm run mutate${flags.length ? ` -- ${flags.join(" ")}` : ""}\`, started ${source.at} ` +
      `at commit ${source.commit}${source.dirty ? " (with uncommitted changes in src/ or test/)" : ""}. ` +
      "How to read it and how to add a mutant: [DEVELOPING.md](../DEVELOPING.md).",
    "",
    summary,
    "",
    text,
    "",
  ].join("\n");
}

try {
  await main();
} finally {
  await cleanup();
}
