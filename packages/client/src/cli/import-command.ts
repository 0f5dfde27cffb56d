/**
 * The `latchkey import` command: checks the whole file (streamed), then sends it in batches with a
 * progress bar, writing a summary file after every batch (`<file>.summary.json` or `--summary`):
 * the rows done, imported and conflicting (already stored: done too), the last row sent, whether the
 * run completed. `--resume` skips the rows a stopped run's summary says were sent.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import type { LatchkeyClient } from "../client.js";
import {
  type ImportOutcome,
  ImportFileError,
  MAX_BATCH,
  columnMap,
  importRows,
  readImportFile,
} from "./import-file.js";
import { progressBar } from "./output.js";

export interface ImportCommandOptions {
  readonly file: string;
  readonly batchSize: number;
  readonly columns: readonly string[];
  readonly ownerType?: string | undefined;
  readonly summary?: string | undefined;
  readonly resume: boolean;
  /** Keep every row's result (for --json). */
  readonly keepResults: boolean;
}

/** The summary file: enough to resume, constant in size whatever the file's. */
export interface ImportSummary {
  file: string;
  rows: number;
  done: number;
  imported: number;
  conflicts: number;
  /** The file's last row sent (imported or conflict): a resumed run starts after it. */
  last_row: number;
  complete: boolean;
  /** Rows that conflicted (the first 1,000): already stored, or repeated in the file. */
  conflict_rows: number[];
  updated_at: string;
}

export { MAX_BATCH };

/** Counts and checks the file's rows (a first pass: nothing is sent if any row is wrong). */
async function checkFile(options: ImportCommandOptions): Promise<number> {
  let rows = 0;
  const ownerType = options.ownerType;
  if (ownerType !== undefined && ownerType !== "user" && ownerType !== "workspace")
    throw new ImportFileError("--owner-type must be user or workspace");
  const columns = columnMap(options.columns);
  for await (const _ of readImportFile(options.file, { columns, ...(ownerType ? { ownerType } : {}) })) rows++;
  return rows;
}

async function readSummary(path: string): Promise<ImportSummary | null> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as ImportSummary;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ImportFileError(`${path}: not a summary this command wrote (${(error as Error).message})`);
  }
}

/** Written whole to a temporary file, then renamed: a run stopped mid-write leaves the previous summary. */
async function writeSummary(path: string, summary: ImportSummary): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(summary, null, 2) + "\n");
  await rename(`${path}.tmp`, path);
}

export async function runImport(
  api: LatchkeyClient,
  options: ImportCommandOptions,
  note: (message: string) => void,
): Promise<{ outcome: ImportOutcome; summary: ImportSummary; summaryPath: string }> {
  const rows = await checkFile(options);
  const summaryPath = options.summary ?? `${options.file}.summary.json`;
  const previous = options.resume ? await readSummary(summaryPath) : null;
  const after = previous?.last_row ?? 0;
  const base = { done: previous?.done ?? 0, imported: previous?.imported ?? 0, conflicts: previous?.conflicts ?? 0 };
  if (previous) note(`Resuming after row ${after} (${base.done} of ${rows} rows done before).`);
  const summary: ImportSummary = {
    file: options.file,
    rows,
    ...base,
    last_row: after,
    complete: false,
    conflict_rows: previous?.conflict_rows ?? [],
    updated_at: new Date().toISOString(),
  };
  const bar = progressBar(rows);
  const columns = columnMap(options.columns);
  const ownerType = options.ownerType;
  let outcome: ImportOutcome;
  try {
    outcome = await importRows(
      api,
      readImportFile(options.file, { columns, ...(ownerType ? { ownerType } : {}) }),
      options.batchSize,
      async (progress) => {
        Object.assign(summary, {
          done: base.done + progress.done,
          imported: base.imported + progress.imported,
          conflicts: base.conflicts + progress.conflicts,
          last_row: progress.lastRow,
          conflict_rows: [...(previous?.conflict_rows ?? []), ...progress.conflictRows.map((c) => c.row)].slice(
            0,
            1000,
          ),
          updated_at: new Date().toISOString(),
        });
        await writeSummary(summaryPath, summary);
        const detail = `imported ${summary.imported}, conflicts ${summary.conflicts}`;
        bar.update(summary.done, detail);
        // Without a terminal (a pipe, CI), a line every ten batches.
        if (!process.stderr.isTTY && progress.done % (options.batchSize * 10) === 0)
          note(`${summary.done}/${rows} rows: ${detail}`);
      },
      { after, keepResults: options.keepResults },
    );
  } finally {
    bar.end();
  }
  summary.complete = true;
  summary.updated_at = new Date().toISOString();
  await writeSummary(summaryPath, summary);
  return { outcome, summary, summaryPath };
}
