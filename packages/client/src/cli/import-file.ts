/**
 * `latchkey import`: legacy keys, by hash, from a CSV or JSON file into POST /v1/keys/import, in
 * batches of at most 100 (the API's limit). Every row is checked before anything is sent, so a typo
 * on row 9,000 does not leave 8,900 keys imported; the server still checks each batch in full and
 * imports none of a batch it refuses. Re-running a file is safe: stored hashes come back as conflicts.
 *
 * CSV: a header row naming the columns (`hash` and `name` required; `start`, `owner`, `scopes`,
 * `resources`, `expires_at`, `created_at`, `metadata`, `format` optional), RFC 4180 quoting;
 * `scopes` and `resources` are space-separated, `metadata` is a JSON object, an empty cell is absent.
 * JSON: an array of import items, or `{ "keys": [...] }`.
 */
import type { LatchkeyClient } from "../client.js";
import type { ImportItem, ImportResult } from "../types.js";

/** The API's batch limit. */
export const MAX_BATCH = 100;

export interface ImportRow {
  /** Where the item is in the file: the CSV line (the header is line 1) or the JSON array index + 1. */
  readonly row: number;
  readonly item: ImportItem;
}

/** A problem with the file, naming the row and field; nothing was sent. */
export class ImportFileError extends Error {
  override readonly name = "ImportFileError";
}

const COLUMNS = new Set([
  "hash",
  "name",
  "start",
  "owner",
  "scopes",
  "resources",
  "expires_at",
  "created_at",
  "metadata",
  "format",
]);
const HASH = /^[0-9a-f]{64}$/;

export function parseImportFile(text: string, fileName: string): ImportRow[] {
  const rows = /\.json$/i.test(fileName) ? parseJsonItems(text) : parseCsvItems(text);
  if (rows.length === 0) throw new ImportFileError(`${fileName} holds no keys`);
  for (const { row, item } of rows) {
    if (typeof item.hash !== "string") throw new ImportFileError(`row ${row}: hash: Required`);
    item.hash = item.hash.trim().toLowerCase();
    if (!HASH.test(item.hash))
      throw new ImportFileError(`row ${row}: hash: Must be 64 hex digits (the SHA-256 of the key)`);
    if (typeof item.name !== "string" || item.name.trim() === "")
      throw new ImportFileError(`row ${row}: name: Required`);
  }
  return rows;
}

function parseJsonItems(text: string): ImportRow[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ImportFileError(`Not valid JSON: ${(error as Error).message}`);
  }
  const items = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(items)) throw new ImportFileError('Expected an array of keys, or { "keys": [...] }');
  return items.map((item: unknown, index) => {
    if (typeof item !== "object" || item === null || Array.isArray(item))
      throw new ImportFileError(`row ${index + 1}: Must be an object`);
    return { row: index + 1, item: { ...(item as ImportItem) } };
  });
}

function parseCsvItems(text: string): ImportRow[] {
  const records = parseCsv(text);
  const header = records.shift();
  if (header === undefined) return [];
  const columns = header.cells.map((cell) => cell.trim().toLowerCase());
  for (const column of columns)
    if (!COLUMNS.has(column)) throw new ImportFileError(`line 1: unknown column "${column}"`);
  for (const required of ["hash", "name"])
    if (!columns.includes(required)) throw new ImportFileError(`line 1: the column "${required}" is required`);
  return records
    .filter((record) => record.cells.some((cell) => cell.trim() !== ""))
    .map(({ line, cells }) => {
      if (cells.length !== columns.length)
        throw new ImportFileError(`row ${line}: ${cells.length} cells, but the header names ${columns.length}`);
      const item: Record<string, unknown> = {};
      columns.forEach((column, i) => {
        const cell = (cells[i] ?? "").trim();
        if (cell === "") return;
        if (column === "scopes" || column === "resources") item[column] = cell.split(/\s+/);
        else if (column === "metadata") item[column] = parseMetadata(cell, line);
        else item[column] = cell;
      });
      return { row: line, item: item as unknown as ImportItem };
    });
}

function parseMetadata(cell: string, line: number): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(cell);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new ImportFileError(`row ${line}: metadata: Must be a JSON object`);
}

/** RFC 4180 records, each with the line it starts on; quoted cells may hold commas, quotes ("") and newlines. */
export function parseCsv(text: string): { line: number; cells: string[] }[] {
  const records: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let start = 1;
  const source = text.replace(/^\uFEFF/, "");
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if (quoted) {
      if (char === '"' && source[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (char === '"') quoted = false;
      else {
        if (char === "\n") line++;
        cell += char;
      }
    } else if (char === '"' && cell === "") quoted = true;
    else if (char === ",") {
      cells.push(cell);
      cell = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && source[i + 1] === "\n") i++;
      cells.push(cell);
      records.push({ line: start, cells });
      cells = [];
      cell = "";
      start = ++line;
    } else cell += char;
  }
  if (quoted) throw new ImportFileError(`row ${start}: unterminated quoted cell`);
  if (cell !== "" || cells.length > 0) records.push({ line: start, cells: [...cells, cell] });
  return records;
}

export interface ImportOutcome {
  imported: number;
  conflicts: number;
  /** Every item's result with its row, in file order. */
  results: (ImportResult["results"][number] & { row: number })[];
}

/** A batch failed: the import stopped there, with `imported` keys from the batches before it. */
export class ImportStopped extends Error {
  override readonly name = "ImportStopped";
  constructor(
    override readonly cause: unknown,
    readonly batch: readonly ImportRow[],
    readonly imported: number,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/**
 * Sends the rows in batches, in order. A batch that fails stops the import with ImportStopped (the
 * batches before it stay imported; re-run the fixed file: they come back as conflicts); a 422 names
 * `keys.<i>.<field>`, which `rowOf` turns back into a row of the file.
 */
export async function importRows(
  client: LatchkeyClient,
  rows: readonly ImportRow[],
  batchSize: number,
  onBatch: (outcome: ImportOutcome, sent: number) => void = () => {},
): Promise<ImportOutcome> {
  const outcome: ImportOutcome = { imported: 0, conflicts: 0, results: [] };
  for (let from = 0; from < rows.length; from += batchSize) {
    const batch = rows.slice(from, from + batchSize);
    let answer: ImportResult;
    try {
      answer = await client.import(batch.map((row) => row.item));
    } catch (error) {
      throw new ImportStopped(error, batch, outcome.imported);
    }
    outcome.imported += answer.imported;
    outcome.conflicts += answer.conflicts;
    answer.results.forEach((result, i) => outcome.results.push({ ...result, row: batch[i]?.row ?? -1 }));
    onBatch(outcome, from + batch.length);
  }
  return outcome;
}

/** `keys.3.scopes.0` in a refused batch -> the file's row and `scopes.0`. */
export function rowOf(field: string, batch: readonly ImportRow[]): { row: number | null; field: string } {
  const match = /^keys\.(\d+)\.?(.*)$/.exec(field);
  const index = match ? Number(match[1]) : NaN;
  return { row: batch[index]?.row ?? null, field: match ? match[2] || "(item)" : field };
}
