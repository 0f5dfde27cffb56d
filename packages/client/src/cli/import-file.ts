/**
 * `latchkey import`: legacy keys, by hash, from a CSV or JSON file into POST /v1/keys/import, in
 * batches of at most 100 (the API's limit). A CSV is streamed (any size, in constant memory): a first
 * pass checks every row, so a typo on row 9,000 does not leave 8,900 keys imported; a second pass sends
 * the batches. The server still checks each batch in full and imports none of a batch it refuses.
 * Re-running a file is safe: stored hashes come back as conflicts, which count as done; a summary file
 * written after every batch lets `--resume` skip what a stopped run already sent.
 *
 * CSV: a header row naming the columns (`hash` and `name` required; `format`, `lookup_id`, `start`,
 * `owner`, `scopes`, `resources`, `expires_at`, `created_at`, `last_used_at`, `metadata` optional; or
 * other names mapped with `--column field=header`), RFC 4180 quoting; `scopes` and `resources` are
 * space-separated, `metadata` is a JSON object, an empty cell is absent. `owner` is `user`, `workspace`,
 * or `<user|workspace>:<id>` (sent as `owner` and `owner_id`: a root key imports for its customers).
 * JSON: an array of import items, or `{ "keys": [...] }` (read whole).
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
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

export const COLUMNS = [
  "hash",
  "name",
  "format",
  "lookup_id",
  "start",
  "owner",
  "scopes",
  "resources",
  "expires_at",
  "created_at",
  "last_used_at",
  "metadata",
] as const;
const KNOWN = new Set<string>(COLUMNS);
const HEX64 = /^[0-9a-f]{64}$/i;
const BCRYPT = /^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$/;

/** `--column field=header` pairs as a map from a CSV header to the item field it holds. */
export function columnMap(pairs: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const pair of pairs) {
    const [field, header] = pair.split("=", 2).map((part) => part.trim());
    if (!field || !header || !KNOWN.has(field))
      throw new ImportFileError(`--column ${pair}: expected <field>=<header>, field one of ${COLUMNS.join(", ")}`);
    map.set(header.toLowerCase(), field);
  }
  return map;
}

/** Checks one row's item in place (hash lowercased when hex), naming the row and field. */
export function checkRow({ row, item }: ImportRow): void {
  if (typeof item.hash !== "string") throw new ImportFileError(`row ${row}: hash: Required`);
  item.hash = item.hash.trim();
  if (HEX64.test(item.hash)) item.hash = item.hash.toLowerCase();
  else if (!BCRYPT.test(item.hash))
    throw new ImportFileError(`row ${row}: hash: Must be 64 hex digits (SHA-256 or HMAC-SHA256) or a bcrypt hash`);
  if (typeof item.name !== "string" || item.name.trim() === "") throw new ImportFileError(`row ${row}: name: Required`);
}

/** The file's rows, in order, each checked: streamed for a CSV, read whole for JSON. */
export async function* readImportFile(
  fileName: string,
  options: { columns?: Map<string, string>; ownerType?: string } = {},
): AsyncGenerator<ImportRow> {
  const rows = /\.json$/i.test(fileName)
    ? parseJsonItems(await readFile(fileName, "utf8"))
    : csvItems(csvRecords(createReadStream(fileName, { encoding: "utf8" })), options);
  let any = false;
  for await (const row of rows) {
    checkRow(row);
    any = true;
    yield row;
  }
  if (!any) throw new ImportFileError(`${fileName} holds no keys`);
}

/** The rows of a whole file's text (for tests and small files). */
export async function parseImportFile(text: string, fileName: string): Promise<ImportRow[]> {
  const rows = /\.json$/i.test(fileName) ? parseJsonItems(text) : csvItems(csvRecords([text]));
  const out: ImportRow[] = [];
  for await (const row of rows) {
    checkRow(row);
    out.push(row);
  }
  if (out.length === 0) throw new ImportFileError(`${fileName} holds no keys`);
  return out;
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

async function* csvItems(
  records: AsyncIterable<{ line: number; cells: string[] }>,
  options: { columns?: Map<string, string>; ownerType?: string } = {},
): AsyncGenerator<ImportRow> {
  let columns: string[] | null = null;
  for await (const { line, cells } of records) {
    if (columns === null) {
      columns = cells.map((cell) => {
        const header = cell.trim().toLowerCase();
        const field = options.columns?.get(header) ?? header;
        if (!KNOWN.has(field)) throw new ImportFileError(`line 1: unknown column "${header}" (map it with --column)`);
        return field;
      });
      for (const required of ["hash", "name"])
        if (!columns.includes(required)) throw new ImportFileError(`line 1: the column "${required}" is required`);
      continue;
    }
    if (!cells.some((cell) => cell.trim() !== "")) continue;
    if (cells.length !== columns.length)
      throw new ImportFileError(`row ${line}: ${cells.length} cells, but the header names ${columns.length}`);
    const item: Record<string, unknown> = {};
    columns.forEach((column, i) => {
      const cell = (cells[i] ?? "").trim();
      if (cell === "") return;
      if (column === "scopes" || column === "resources") item[column] = cell.split(/\s+/);
      else if (column === "metadata") item[column] = parseMetadata(cell, line);
      else if (column === "owner") Object.assign(item, parseOwner(cell, line, options.ownerType));
      else item[column] = cell;
    });
    yield { row: line, item: item as unknown as ImportItem };
  }
}

/** `user`, `workspace`, `<type>:<id>`, or a bare id with --owner-type. */
function parseOwner(cell: string, line: number, ownerType: string | undefined): Record<string, string> {
  const colon = cell.indexOf(":");
  const [type, id] = colon === -1 ? [cell, undefined] : [cell.slice(0, colon), cell.slice(colon + 1)];
  if ((type === "user" || type === "workspace") && (id === undefined || id !== "")) {
    return id === undefined ? { owner: type } : { owner: type, owner_id: id };
  }
  if (ownerType !== undefined && colon === -1) return { owner: ownerType, owner_id: cell };
  throw new ImportFileError(
    `row ${line}: owner: Must be user, workspace or <user|workspace>:<id> (or a bare id with --owner-type)`,
  );
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

/**
 * RFC 4180 records, each with the line it starts on, from text arriving in chunks (a file stream);
 * quoted cells may hold commas, quotes ("") and newlines.
 */
export async function* csvRecords(chunks: AsyncIterable<string> | Iterable<string>): AsyncGenerator<{
  line: number;
  cells: string[];
}> {
  let cells: string[] = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let start = 1;
  let first = true;
  /** A `"` at the end of a chunk in a quoted cell, or a `\r` at its end: decided by the next character. */
  let pending = "";
  for await (let chunk of chunks) {
    if (first) chunk = chunk.replace(/^\uFEFF/, "");
    first = false;
    const source = pending + chunk;
    pending = "";
    for (let i = 0; i < source.length; i++) {
      const char = source[i];
      if ((char === '"' && quoted) || (char === "\r" && !quoted)) {
        if (i === source.length - 1) {
          pending = char;
          break;
        }
      }
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
        yield { line: start, cells };
        cells = [];
        cell = "";
        start = ++line;
      } else cell += char;
    }
  }
  if (pending === '"') quoted = false;
  else if (pending === "\r") {
    cells.push(cell);
    yield { line: start, cells };
    return;
  }
  if (quoted) throw new ImportFileError(`row ${start}: unterminated quoted cell`);
  if (cell !== "" || cells.length > 0) yield { line: start, cells: [...cells, cell] };
}

export interface ImportOutcome {
  imported: number;
  conflicts: number;
  /** Rows sent (imported or conflict) so far, and the last of them. */
  done: number;
  lastRow: number;
  /** Every item's result with its row, in file order (kept only when asked: memory grows with the file). */
  results: (ImportResult["results"][number] & { row: number })[];
  /** The rows that conflicted, with their hash's first characters (at most CONFLICTS_KEPT). */
  conflictRows: { row: number; hash: string }[];
}

/** How many conflicting rows a summary names. */
export const CONFLICTS_KEPT = 1000;

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
 * Sends the rows in batches, in order, skipping rows up to `after` (a resumed run). A batch that fails
 * stops the import with ImportStopped (the batches before it stay imported; re-run the fixed file: they
 * come back as conflicts, which count as done); a 422 names `keys.<i>.<field>`, which `rowOf` turns
 * back into a row of the file. `onBatch` runs after each batch (progress, the summary file).
 */
export async function importRows(
  client: LatchkeyClient,
  rows: AsyncIterable<ImportRow> | Iterable<ImportRow>,
  batchSize: number,
  onBatch: (outcome: ImportOutcome) => void | Promise<void> = () => {},
  options: { after?: number; keepResults?: boolean } = {},
): Promise<ImportOutcome> {
  const outcome: ImportOutcome = { imported: 0, conflicts: 0, done: 0, lastRow: 0, results: [], conflictRows: [] };
  let batch: ImportRow[] = [];
  const send = async () => {
    let answer: ImportResult;
    try {
      answer = await client.import(batch.map((row) => row.item));
    } catch (error) {
      throw new ImportStopped(error, batch, outcome.imported);
    }
    outcome.imported += answer.imported;
    outcome.conflicts += answer.conflicts;
    outcome.done += batch.length;
    outcome.lastRow = batch.at(-1)?.row ?? outcome.lastRow;
    answer.results.forEach((result, i) => {
      const row = batch[i]?.row ?? -1;
      if (options.keepResults !== false) outcome.results.push({ ...result, row });
      if (result.status === "conflict" && outcome.conflictRows.length < CONFLICTS_KEPT)
        outcome.conflictRows.push({ row, hash: result.hash });
    });
    batch = [];
    await onBatch(outcome);
  };
  for await (const row of rows) {
    if (row.row <= (options.after ?? 0)) continue;
    batch.push(row);
    if (batch.length === batchSize) await send();
  }
  if (batch.length > 0) await send();
  return outcome;
}

/** `keys.3.scopes.0` in a refused batch -> the file's row and `scopes.0`. */
export function rowOf(field: string, batch: readonly ImportRow[]): { row: number | null; field: string } {
  const match = /^keys\.(\d+)\.?(.*)$/.exec(field);
  const index = match ? Number(match[1]) : NaN;
  return { row: batch[index]?.row ?? null, field: match ? match[2] || "(item)" : field };
}
