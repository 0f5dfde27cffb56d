/**
 * The latchkey CLI: log in once, then manage keys, verify them and import legacy ones from a
 * terminal or a script. Results go to stdout (tables, or JSON with --json); notes, prompts and
 * progress go to stderr, so `KEY=$(latchkey keys create --name ci)` captures the new key and nothing
 * else. The exit code says what happened (EXIT below; documented in `latchkey help`).
 */
import { readFile } from "node:fs/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { LatchkeyClient } from "../client.js";
import { LatchkeyError } from "../errors.js";
import type { ApiKey, CreateKeyInput, OwnerType } from "../types.js";
import { loadConfig, removeConfig, saveConfig } from "./config.js";
import {
  ImportFileError,
  ImportStopped,
  MAX_BATCH,
  importRows,
  parseImportFile,
  rowOf,
  type ImportRow,
} from "./import-file.js";
import { note, printJson, printTable, progressBar } from "./output.js";

export const EXIT = {
  ok: 0,
  /** latchkey refused the request (4xx other than below) or failed (5xx other than 503). */
  api: 1,
  /** The command line is wrong, or so is the file to import. */
  usage: 2,
  /** Not logged in, or the token was refused (401) or lacks the power (403). */
  auth: 3,
  /** No such key (404). */
  notFound: 4,
  /** latchkey could not be reached, timed out, is unavailable (503) or is limiting us (429). */
  unavailable: 5,
  /** `verify`: latchkey answered, and the key is not valid (for the scope / resource asked). */
  invalidKey: 6,
} as const;

const HELP = `latchkey: manage latchkey API keys from a terminal.

  latchkey login --url <base-url> --token-stdin   store the URL and a JWT (read from stdin), 0600
  latchkey logout                                 forget them
  latchkey whoami                                 who the stored token is
  latchkey keys create --name <name> [--scope <s>]... [--resource <r>]... [--expires-at <RFC 3339>]
                       [--owner user|workspace] [--metadata <json>] [--idempotency-key <k>]
                                                  prints the new key, once, on stdout
  latchkey keys list [--limit <n>] [--cursor <c>] [--all] [--include-revoked]
  latchkey keys get <id>
  latchkey keys revoke <id>
  latchkey verify [--scope <s>] [--resource <r>]  the key is read from stdin
  latchkey import <file.csv|file.json> [--batch-size <n>]

Options for every command: --json (machine output on stdout), --url <base-url> (overrides the login).
Environment: LATCHKEY_URL and LATCHKEY_TOKEN override the stored login (a key as token is never stored);
XDG_CONFIG_HOME places the config file.
Exit codes: 0 ok, 1 API error, 2 usage, 3 not logged in or refused (401/403), 4 not found,
5 unavailable (network, timeout, 503, 429), 6 verify: the key is not valid.
`;

class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;
const GLOBAL: Options = { json: { type: "boolean" }, url: { type: "string" }, help: { type: "boolean" } };

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Command {
  readonly options: Options;
  /** How many positionals it takes after its name. */
  readonly positionals: number;
  run(values: Values, positionals: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  login: {
    options: { "token-stdin": { type: "boolean" } },
    positionals: 0,
    async run(values) {
      if (!str(values.url)) throw new UsageError("login needs --url <base-url>");
      const url = baseUrl(str(values.url) ?? "");
      if (!values["token-stdin"])
        throw new UsageError(
          "login reads the token from stdin: pass --token-stdin (never a token on the command line)",
        );
      const token = (await readStdin()).trim();
      if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token))
        throw new UsageError(
          "login stores a JWT only; an API key is never written to disk (use LATCHKEY_TOKEN to act with a key)",
        );
      const who = await new LatchkeyClient({ baseUrl: url, token }).whoami();
      const path = await saveConfig({ url, token });
      if (values.json) printJson({ url, principal: who.principal, owner_type: who.owner_type, owner_id: who.owner_id });
      else note(`Logged in to ${url} as ${who.owner_type} ${who.owner_id}; saved in ${path} (mode 0600).`);
      return EXIT.ok;
    },
  },
  logout: {
    options: {},
    positionals: 0,
    async run(values) {
      const removed = await removeConfig();
      if (values.json) printJson({ logged_out: removed });
      else note(removed ? "Logged out." : "Not logged in.");
      return EXIT.ok;
    },
  },
  whoami: {
    options: {},
    positionals: 0,
    async run(values) {
      const who = await (await client(values)).whoami();
      if (values.json) printJson(who);
      else process.stdout.write(`${who.principal} ${who.owner_type}:${who.owner_id}\n`);
      return EXIT.ok;
    },
  },
  "keys create": {
    options: {
      name: { type: "string" },
      scope: { type: "string", multiple: true },
      resource: { type: "string", multiple: true },
      "expires-at": { type: "string" },
      owner: { type: "string" },
      metadata: { type: "string" },
      "idempotency-key": { type: "string" },
    },
    positionals: 0,
    async run(values) {
      const name = str(values.name);
      if (name === undefined) throw new UsageError("keys create needs --name <name>");
      const input: CreateKeyInput = { name };
      const scopes = list(values.scope);
      const resources = list(values.resource);
      if (scopes) input.scopes = scopes;
      if (resources) input.resources = resources;
      if (values["expires-at"] !== undefined) input.expires_at = str(values["expires-at"]);
      if (values.owner !== undefined) input.owner = str(values.owner) as OwnerType;
      if (values.metadata !== undefined) input.metadata = jsonObject(str(values.metadata) ?? "", "--metadata");
      const created = await (await client(values)).create(input, { idempotencyKey: str(values["idempotency-key"]) });
      // The key goes to stdout once, and nowhere else.
      if (values.json) printJson(created);
      else {
        process.stdout.write(created.key + "\n");
        note(`Created key ${created.id} "${created.name}" (${created.start}...). It is shown only now: store it.`);
      }
      return EXIT.ok;
    },
  },
  "keys list": {
    options: {
      limit: { type: "string" },
      cursor: { type: "string" },
      all: { type: "boolean" },
      "include-revoked": { type: "boolean" },
    },
    positionals: 0,
    async run(values) {
      const api = await client(values);
      const options = {
        limit: values.limit === undefined ? undefined : integer(str(values.limit) ?? "", "--limit"),
        cursor: str(values.cursor),
        include_revoked: values["include-revoked"] === true,
      };
      const keys: ApiKey[] = [];
      let next: string | null = null;
      if (values.all) for await (const page of api.pages(options)) keys.push(...page.data);
      else {
        const page = await api.list(options);
        keys.push(...page.data);
        next = page.next_cursor;
      }
      if (values.json) printJson({ data: keys, next_cursor: next });
      else {
        printTable(["id", "name", "start", "scopes", "expires", "status"], keys.map(keyRow));
        if (next !== null) note(`More keys: --cursor ${next} (or --all)`);
      }
      return EXIT.ok;
    },
  },
  "keys get": {
    options: {},
    positionals: 1,
    async run(values, [id]) {
      const key = await (await client(values)).get(id ?? "");
      if (values.json) printJson(key);
      else
        printTable(
          ["field", "value"],
          Object.entries(key).map(([field, value]) => [field, display(value)]),
        );
      return EXIT.ok;
    },
  },
  "keys revoke": {
    options: {},
    positionals: 1,
    async run(values, [id]) {
      await (await client(values)).revoke(id ?? "");
      if (values.json) printJson({ id, revoked: true });
      else note(`Revoked ${id}.`);
      return EXIT.ok;
    },
  },
  verify: {
    options: { scope: { type: "string" }, resource: { type: "string" } },
    positionals: 0,
    async run(values) {
      const key = (await readStdin()).trim();
      if (key === "") throw new UsageError("verify reads the key from stdin (never from the command line)");
      const api = await client(values, false);
      const verdict = await api.verify(key, { scope: str(values.scope), resource: str(values.resource) });
      if (values.json) printJson(verdict);
      else if (verdict.valid)
        process.stdout.write(`VALID key ${verdict.key_id} of ${verdict.owner?.type}:${verdict.owner?.id}\n`);
      else process.stdout.write(`${verdict.code}\n`);
      return verdict.valid ? EXIT.ok : EXIT.invalidKey;
    },
  },
  import: {
    options: { "batch-size": { type: "string" } },
    positionals: 1,
    async run(values, [file]) {
      const batchSize =
        values["batch-size"] === undefined ? MAX_BATCH : integer(str(values["batch-size"]) ?? "", "--batch-size");
      if (batchSize < 1 || batchSize > MAX_BATCH) throw new UsageError(`--batch-size must be 1 to ${MAX_BATCH}`);
      let rows: ImportRow[];
      try {
        rows = parseImportFile(await readFile(file ?? "", "utf8"), file ?? "");
      } catch (error) {
        if (error instanceof ImportFileError || (error as NodeJS.ErrnoException).code === "ENOENT")
          throw new UsageError(`${file}: ${(error as Error).message}`);
        throw error;
      }
      const api = await client(values);
      const bar = progressBar(rows.length);
      let outcome;
      try {
        outcome = await importRows(api, rows, batchSize, (progress, sent) =>
          bar.update(sent, `imported ${progress.imported}, conflicts ${progress.conflicts}`),
        );
      } catch (error) {
        bar.end();
        if (!(error instanceof ImportStopped)) throw error;
        const { batch, imported, cause } = error;
        if (cause instanceof LatchkeyError)
          for (const [field, messages] of Object.entries(cause.problem.errors ?? {})) {
            const at = rowOf(field, batch);
            note(`row ${at.row ?? "?"}: ${at.field}: ${messages.join("; ")}`);
          }
        // A refusal imports nothing of the batch; after a lost answer, some of it may be stored.
        const refused = cause instanceof LatchkeyError && cause.status >= 400 && cause.status < 500;
        note(
          `Stopped: this batch (rows ${batch[0]?.row}-${batch.at(-1)?.row}) ${refused ? "was not" : "may not have been"} imported; ${imported} keys before it were. Re-running the fixed file is safe.`,
        );
        throw cause;
      }
      bar.end();
      const conflicts = outcome.results.filter((result) => result.status === "conflict");
      if (values.json) printJson(outcome);
      else {
        process.stdout.write(`Imported ${outcome.imported}, conflicts ${outcome.conflicts}.\n`);
        if (conflicts.length > 0)
          printTable(
            ["row", "hash", "status"],
            conflicts.map((c) => [String(c.row), c.hash, "conflict: already stored, or repeated in the file"]),
          );
      }
      return EXIT.ok;
    },
  },
};

async function client(values: Values, needsToken = true): Promise<LatchkeyClient> {
  const config = await loadConfig();
  const url = str(values.url) ?? config.url;
  if (!url) throw new LoginNeeded();
  if (needsToken && !config.token) throw new LoginNeeded();
  return new LatchkeyClient({ baseUrl: baseUrl(url), token: config.token });
}

/** An http(s) URL without a trailing slash, or a usage error. */
function baseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`"${text}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`"${text}" is not an http(s) URL`);
  return url.origin + url.pathname.replace(/\/+$/, "");
}

class LoginNeeded extends Error {
  constructor() {
    super(
      "Not logged in: run `latchkey login --url <base-url> --token-stdin` (or set LATCHKEY_URL and LATCHKEY_TOKEN)",
    );
  }
}

function keyRow(key: ApiKey): string[] {
  const status = key.revoked_at
    ? "revoked"
    : key.expires_at && Date.parse(key.expires_at) <= Date.now()
      ? "expired"
      : "active";
  return [key.id, key.name, key.start, key.scopes.join(" "), key.expires_at ?? "never", status];
}

function display(value: unknown): string {
  if (value === null) return "-";
  return typeof value === "string" ? value : JSON.stringify(value);
}

const str = (value: Values[string]): string | undefined => (typeof value === "string" ? value : undefined);
const list = (value: Values[string]): string[] | undefined =>
  Array.isArray(value) && value.length ? value.map(String) : undefined;

function integer(text: string, flag: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number`);
  return Number(text);
}

function jsonObject(text: string, flag: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new UsageError(`${flag} must be a JSON object`);
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) note("Reading from stdin (end with Ctrl-D)...");
  let text = "";
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

/** The exit code a failure means. */
function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof LoginNeeded) return EXIT.auth;
  if (error instanceof LatchkeyError) {
    if (error.status === 401 || error.status === 403) return EXIT.auth;
    if (error.status === 404) return EXIT.notFound;
    if (error.unavailable || error.status === 429) return EXIT.unavailable;
  }
  return EXIT.api;
}

function describe(error: unknown): string {
  if (!(error instanceof LatchkeyError)) return (error as Error)?.message ?? String(error);
  const fields = Object.entries(error.problem.errors ?? {}).map(
    ([field, messages]) => `\n  ${field}: ${messages.join("; ")}`,
  );
  const status = error.status === 0 ? "" : ` (${error.status})`;
  return `${error.message}${status}${fields.join("")}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [first, second] = argv;
  if (first === undefined) {
    process.stderr.write(HELP);
    return EXIT.usage;
  }
  if (first === "help" || first === "--help" || first === "-h") {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const name = first === "keys" ? `keys ${second ?? ""}` : first;
  const command = COMMANDS[name];
  try {
    if (command === undefined) throw new UsageError(`Unknown command "${name.trim()}". Run \`latchkey help\`.`);
    const { values, positionals } = parseArgs({
      args: argv.slice(first === "keys" ? 2 : 1) as string[],
      options: { ...GLOBAL, ...command.options },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT.ok;
    }
    if (positionals.length !== command.positionals)
      throw new UsageError(
        `${name} takes ${command.positionals || "no"} argument${command.positionals === 1 ? "" : "s"}`,
      );
    return await command.run(values, positionals);
  } catch (error) {
    const usage = error instanceof TypeError && (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    note(`latchkey: ${describe(error)}`);
    return usage ? EXIT.usage : exitCodeOf(error);
  }
}

process.exitCode = await main(process.argv.slice(2));
