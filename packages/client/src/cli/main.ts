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
import {
  AUDIT_ACTIONS,
  type ApiKey,
  type AuditAction,
  type AuditEvent,
  type CreateKeyInput,
  type CreditsInput,
  type KeyStatus,
  type OwnerType,
  type RateLimit,
  type UpdateKeyInput,
} from "../types.js";
import { loadConfig, removeConfig, saveConfig } from "./config.js";
import { COLUMNS as IMPORT_COLUMNS, ImportFileError, ImportStopped, MAX_BATCH, rowOf } from "./import-file.js";
import { runImport } from "./import-command.js";
import { note, printJson, printTable } from "./output.js";

export const EXIT = {
  ok: 0,
  /**
   * latchkey refused the request (4xx other than below, e.g. 422, a 409 for a revoked or expired key
   * to rotate, or the 403 of the owner's key quota, which is no matter of the token's powers) or
   * failed (5xx other than 503).
   */
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
                       [--allowed-ip <address|CIDR>]... [--owner user|workspace] [--owner-id <id>]
                       [--metadata <json>]
                       [--idempotency-key <k>] [--ratelimit <name>:<limit>/<duration>]...
                       [--credits <n> [--refill <amount>/day|month]]
                                                  prints the new key, once, on stdout; a duration is
                                                  1s, 10s, 1m, 1h, 1d or milliseconds (1 s to 1 day)
  latchkey keys list [--limit <n>] [--cursor <c>] [--all] [--include-revoked]
                     [--status active|revoked|expired] [--created-by <user:sub|key:id|service>]
                     [--owner-type user|workspace] [--owner-id <id>]
  latchkey keys get <id>
  latchkey keys rotate <id> [--grace <seconds>]   prints the new key, once, on stdout; the old key keeps
                                                  working for --grace seconds (default 0, at most 604800)
  latchkey keys update <id> [--name <name>] [--scope <s>]... [--resource <r>]... | [--all-resources]
                       [--expires-at <RFC 3339> | --no-expiry] [--allowed-ip <a>]... | [--any-ip]
                       [--metadata <json> | --no-metadata]
                       [--ratelimit <name>:<limit>/<duration>]... | [--no-ratelimits]
                       [--credits <n> [--refill <amount>/day|month | --no-refill] | --no-credits]
                                                  --scope, --resource, --allowed-ip, --ratelimit replace
                                                  the list; --credits sets the balance (the refill stays
                                                  unless --refill or --no-refill is given)
  latchkey keys disable <id>                      the key fails with DISABLED until enabled again
  latchkey keys enable <id>
  latchkey keys revoke <id> [--cascade]          --cascade: and every key it made, and theirs
  latchkey keys credits <id> --set <n> | --add <n> | --take <n>
                                                  the key's credit balance; prints the balance after
  latchkey keys usage <id> [--granularity hour|day] [--from <RFC 3339>] [--to <RFC 3339>]
                                                  verifications per hour or day, by outcome
  latchkey events [--key <id>] [--action <a>] [--since <RFC 3339>] [--until <RFC 3339>]
                  [--owner-type user|workspace] [--owner-id <id>] [--limit <n>] [--cursor <c>] [--all]
                                                  the audit log, newest first (of one key with --key);
                                                  actions: ${AUDIT_ACTIONS.join(", ")}
  latchkey verify [--scope <s>] [--resource <r>] [--ip <address>] [--cost <n>]
                                                  the key is read from stdin; --cost: credits to spend
                                                  (default 1; 0 peeks: spends nothing)
  latchkey import <file.csv|file.json> [--batch-size <n>] [--column <field>=<header>]... [--owner-type user|workspace]
                  [--summary <path>] [--resume]
                                                  legacy keys by hash, in batches of 100 with progress; a CSV
                                                  is streamed; columns: ${IMPORT_COLUMNS.join(", ")};
                                                  owner: user, workspace or <type>:<id> (sent as owner and
                                                  owner_id); a summary file after each batch; --resume skips
                                                  the rows it says were sent (conflicts count as done)

Options for every command: --json (machine output on stdout), --url <base-url> (overrides the login).
With a root key as LATCHKEY_TOKEN, name the owner: --owner and --owner-id to create, --owner-type and
--owner-id to list keys and events (docs/backends.md).
Environment: LATCHKEY_URL and LATCHKEY_TOKEN override the stored login (a key as token is never stored);
XDG_CONFIG_HOME places the config file.
Exit codes: 0 ok, 1 API error (incl. the key quota, 409 for a revoked or expired key), 2 usage, 3 not logged in or
refused (401/403), 4 not found, 5 unavailable (network, timeout, 503, 429), 6 verify: the key is not valid.
`;

class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;
const GLOBAL: Options = { json: { type: "boolean" }, url: { type: "string" }, help: { type: "boolean" } };

/** The usage-limit flags of `keys create` and `keys update`. */
const USAGE_OPTIONS: Options = {
  ratelimit: { type: "string", multiple: true },
  credits: { type: "string" },
  refill: { type: "string" },
};

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
      "allowed-ip": { type: "string", multiple: true },
      owner: { type: "string" },
      "owner-id": { type: "string" },
      metadata: { type: "string" },
      "idempotency-key": { type: "string" },
      ...USAGE_OPTIONS,
    },
    positionals: 0,
    async run(values) {
      const name = str(values.name);
      if (name === undefined) throw new UsageError("keys create needs --name <name>");
      const input: CreateKeyInput = { name };
      const scopes = list(values.scope);
      const resources = list(values.resource);
      const allowedIps = list(values["allowed-ip"]);
      if (scopes) input.scopes = scopes;
      if (resources) input.resources = resources;
      if (allowedIps) input.allowed_ips = allowedIps;
      if (values["expires-at"] !== undefined) input.expires_at = str(values["expires-at"]);
      if (values.owner !== undefined) input.owner = str(values.owner) as OwnerType;
      if (values["owner-id"] !== undefined) input.owner_id = str(values["owner-id"]);
      if (values.metadata !== undefined) input.metadata = jsonObject(str(values.metadata) ?? "", "--metadata");
      if (values.refill !== undefined && values.credits === undefined)
        throw new UsageError("--refill needs --credits <n> (the starting balance)");
      const ratelimits = list(values.ratelimit)?.map(rateLimit);
      if (ratelimits) input.ratelimits = ratelimits;
      if (values.credits !== undefined) input.credits = { remaining: balance(values), refill: refill(values) ?? null };
      const created = await (await client(values)).create(input, { idempotencyKey: str(values["idempotency-key"]) });
      showNewKey(values, created, `Created key ${created.id} "${created.name}" (${created.start}...).`);
      return EXIT.ok;
    },
  },
  "keys list": {
    options: {
      limit: { type: "string" },
      cursor: { type: "string" },
      all: { type: "boolean" },
      "include-revoked": { type: "boolean" },
      status: { type: "string" },
      "created-by": { type: "string" },
      "owner-type": { type: "string" },
      "owner-id": { type: "string" },
    },
    positionals: 0,
    async run(values) {
      const api = await client(values);
      const options = {
        limit: values.limit === undefined ? undefined : integer(str(values.limit) ?? "", "--limit"),
        cursor: str(values.cursor),
        include_revoked: values["include-revoked"] === true,
        status: oneOf<KeyStatus>(values.status, ["active", "revoked", "expired"], "--status"),
        created_by: str(values["created-by"]),
        owner_type: oneOf<OwnerType>(values["owner-type"], ["user", "workspace"], "--owner-type"),
        owner_id: str(values["owner-id"]),
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
        printTable(["id", "name", "start", "scopes", "expires", "ratelimits", "credits", "status"], keys.map(keyRow));
        if (next !== null) note(`More keys: --cursor ${next} (or --all)`);
      }
      return EXIT.ok;
    },
  },
  "keys get": {
    options: {},
    positionals: 1,
    async run(values, [id]) {
      showKey(values, await (await client(values)).get(id ?? ""));
      return EXIT.ok;
    },
  },
  "keys rotate": {
    options: { grace: { type: "string" } },
    positionals: 1,
    async run(values, [id]) {
      const grace = values.grace === undefined ? undefined : integer(str(values.grace) ?? "", "--grace");
      const rotated = await (
        await client(values)
      ).rotate(id ?? "", grace === undefined ? {} : { grace_seconds: grace });
      const old = grace ? `keeps working for ${grace} s (or until its own expiry, if sooner)` : "stopped working now";
      showNewKey(values, rotated, `Rotated ${id}: new key ${rotated.id} (${rotated.start}...); the old key ${old}.`);
      return EXIT.ok;
    },
  },
  "keys update": {
    options: {
      name: { type: "string" },
      scope: { type: "string", multiple: true },
      resource: { type: "string", multiple: true },
      "all-resources": { type: "boolean" },
      "expires-at": { type: "string" },
      "no-expiry": { type: "boolean" },
      "allowed-ip": { type: "string", multiple: true },
      "any-ip": { type: "boolean" },
      metadata: { type: "string" },
      "no-metadata": { type: "boolean" },
      ...USAGE_OPTIONS,
      "no-ratelimits": { type: "boolean" },
      "no-refill": { type: "boolean" },
      "no-credits": { type: "boolean" },
    },
    positionals: 1,
    async run(values, [id]) {
      const input: UpdateKeyInput = {};
      if (values.name !== undefined) input.name = str(values.name);
      const scopes = list(values.scope);
      if (scopes) input.scopes = scopes;
      const resources = clearable(values, "resource", "all-resources");
      if (resources !== undefined) input.resources = resources;
      const expiry = clearable(values, "expires-at", "no-expiry");
      if (expiry !== undefined) input.expires_at = expiry?.[0] ?? null;
      const allowedIps = clearable(values, "allowed-ip", "any-ip");
      if (allowedIps !== undefined) input.allowed_ips = allowedIps;
      const metadata = clearable(values, "metadata", "no-metadata");
      if (metadata !== undefined) input.metadata = metadata && jsonObject(metadata[0] ?? "", "--metadata");
      const ratelimits = clearable(values, "ratelimit", "no-ratelimits");
      if (ratelimits !== undefined) input.ratelimits = ratelimits?.map(rateLimit) ?? [];
      const credits = creditsChange(values);
      if (credits !== undefined) input.credits = credits;
      if (Object.keys(input).length === 0)
        throw new UsageError("keys update needs a change: --name, --scope, --resource, --expires-at, ... (see help)");
      const api = await client(values);
      // PATCH replaces the whole credits setting: a new balance alone keeps the key's refill.
      if (input.credits && input.credits.refill === undefined)
        input.credits.refill = (await api.get(id ?? "")).credits?.refill ?? null;
      const key = await api.update(id ?? "", input);
      note(`Updated ${key.id}: ${Object.keys(input).join(", ")}.`);
      showKey(values, key);
      return EXIT.ok;
    },
  },
  "keys credits": {
    options: { set: { type: "string" }, add: { type: "string" }, take: { type: "string" } },
    positionals: 1,
    async run(values, [id]) {
      const ops = (["set", "add", "take"] as const).filter((flag) => values[flag] !== undefined);
      const [flag] = ops;
      if (flag === undefined || ops.length > 1)
        throw new UsageError("keys credits needs one of --set, --add, --take <n>");
      const amount = integer(str(values[flag]) ?? "", `--${flag}`);
      const op = ({ set: "set", add: "increment", take: "decrement" } as const)[flag];
      const result = await (await client(values)).credits(id ?? "", { op, amount });
      if (values.json) printJson(result);
      else if (result.remaining === null)
        note(
          `Recorded; latchkey's counter did not answer just now, so the balance is not known yet. Do not repeat it.`,
        );
      else process.stdout.write(`${result.remaining}\n`);
      return EXIT.ok;
    },
  },
  "keys usage": {
    options: { granularity: { type: "string" }, from: { type: "string" }, to: { type: "string" } },
    positionals: 1,
    async run(values, [id]) {
      const granularity = oneOf<"hour" | "day">(values.granularity, ["hour", "day"], "--granularity");
      const report = await (
        await client(values)
      ).usage(id ?? "", {
        granularity,
        from: str(values.from),
        to: str(values.to),
      });
      if (values.json) printJson(report);
      else {
        const outcomes = [
          "valid",
          "rate_limited",
          "usage_exceeded",
          "insufficient_scope",
          "resource_not_allowed",
        ] as const;
        const rows = report.buckets.map((bucket) => {
          const other = bucket.total - outcomes.reduce((sum, outcome) => sum + bucket[outcome], 0);
          return [bucket.start, ...[bucket.total, ...outcomes.map((o) => bucket[o]), other].map(String)];
        });
        printTable(["start", "total", ...outcomes, "other"], rows);
      }
      return EXIT.ok;
    },
  },
  "keys disable": enabling(false),
  "keys enable": enabling(true),
  "keys revoke": {
    options: { cascade: { type: "boolean" } },
    positionals: 1,
    async run(values, [id]) {
      const cascade = values.cascade === true;
      await (await client(values)).revoke(id ?? "", { cascade });
      if (values.json) printJson({ id, revoked: true, cascade });
      else note(cascade ? `Revoked ${id} and every key descending from it.` : `Revoked ${id}.`);
      return EXIT.ok;
    },
  },
  events: {
    options: {
      key: { type: "string" },
      action: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
      all: { type: "boolean" },
      "owner-type": { type: "string" },
      "owner-id": { type: "string" },
    },
    positionals: 0,
    async run(values) {
      const api = await client(values);
      const options = {
        keyId: str(values.key),
        owner_type: oneOf<OwnerType>(values["owner-type"], ["user", "workspace"], "--owner-type"),
        owner_id: str(values["owner-id"]),
        action: oneOf<AuditAction>(values.action, AUDIT_ACTIONS, "--action"),
        since: str(values.since),
        until: str(values.until),
        limit: values.limit === undefined ? undefined : integer(str(values.limit) ?? "", "--limit"),
        cursor: str(values.cursor),
      };
      const events: AuditEvent[] = [];
      let next: string | null = null;
      if (values.all) for await (const page of api.eventPages(options)) events.push(...page.data);
      else {
        const page = await api.events(options);
        events.push(...page.data);
        next = page.next_cursor;
      }
      if (values.json) printJson({ data: events, next_cursor: next });
      else {
        printTable(["at", "key", "action", "actor", "ip", "changes"], events.map(eventRow));
        if (next !== null) note(`More events: --cursor ${next} (or --all)`);
      }
      return EXIT.ok;
    },
  },
  verify: {
    options: {
      scope: { type: "string" },
      resource: { type: "string" },
      ip: { type: "string" },
      cost: { type: "string" },
    },
    positionals: 0,
    async run(values) {
      const key = (await readStdin()).trim();
      if (key === "") throw new UsageError("verify reads the key from stdin (never from the command line)");
      const api = await client(values, false);
      const checks = {
        scope: str(values.scope),
        resource: str(values.resource),
        ip: str(values.ip),
        cost: values.cost === undefined ? undefined : integer(str(values.cost) ?? "", "--cost"),
      };
      const verdict = await api.verify(key, checks);
      if (values.json) printJson(verdict);
      else if (verdict.code === "VALID")
        process.stdout.write(`VALID key ${verdict.key_id} of ${verdict.owner.type}:${verdict.owner.id}\n`);
      else process.stdout.write(`${verdict.code}\n`);
      return verdict.code === "VALID" ? EXIT.ok : EXIT.invalidKey;
    },
  },
  import: {
    options: {
      "batch-size": { type: "string" },
      column: { type: "string", multiple: true },
      "owner-type": { type: "string" },
      summary: { type: "string" },
      resume: { type: "boolean" },
    },
    positionals: 1,
    async run(values, [file]) {
      const batchSize =
        values["batch-size"] === undefined ? MAX_BATCH : integer(str(values["batch-size"]) ?? "", "--batch-size");
      if (batchSize < 1 || batchSize > MAX_BATCH) throw new UsageError(`--batch-size must be 1 to ${MAX_BATCH}`);
      const api = await client(values);
      let done;
      try {
        done = await runImport(
          api,
          {
            file: file ?? "",
            batchSize,
            columns: ((values.column ?? []) as string[]).map(String),
            ownerType: str(values["owner-type"]),
            summary: str(values.summary),
            resume: values.resume === true,
            keepResults: values.json === true,
          },
          note,
        );
      } catch (error) {
        if (error instanceof ImportFileError || (error as NodeJS.ErrnoException).code === "ENOENT")
          throw new UsageError(`${file}: ${(error as Error).message}`);
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
          `Stopped: this batch (rows ${batch[0]?.row}-${batch.at(-1)?.row}) ${refused ? "was not" : "may not have been"} imported; ${imported} keys before it were. Re-running the fixed file is safe (--resume skips the rows already sent).`,
        );
        throw cause;
      }
      const { outcome, summary, summaryPath } = done;
      if (values.json)
        printJson({ imported: outcome.imported, conflicts: outcome.conflicts, results: outcome.results });
      else {
        process.stdout.write(`Imported ${outcome.imported}, conflicts ${outcome.conflicts}.\n`);
        if (outcome.conflictRows.length > 0)
          printTable(
            ["row", "hash", "status"],
            outcome.conflictRows.map((c) => [
              String(c.row),
              c.hash,
              "conflict: already stored, or repeated in the file",
            ]),
          );
      }
      note(`Summary: ${summaryPath} (${summary.done} of ${summary.rows} rows done, complete).`);
      return EXIT.ok;
    },
  },
};

const DURATION_UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;

/**
 * `--ratelimit <name>:<limit>/<duration>` (the name may hold colons: the last one ends it), e.g.
 * `api:100/1m`; a duration without a unit is milliseconds. Only the syntax is checked here: the
 * bounds (1 s to 1 day, at most 10, unique names) are latchkey's to judge.
 */
function rateLimit(text: string): RateLimit {
  const match = /^(.+):(\d+)\/(\d+)(ms|s|m|h|d)?$/.exec(text);
  if (!match) throw new UsageError(`--ratelimit must be <name>:<limit>/<duration>, e.g. api:100/1m (got "${text}")`);
  const [, name = "", limit = "", amount = "", unit = "ms"] = match;
  return {
    name,
    limit: Number(limit),
    duration_ms: Number(amount) * DURATION_UNITS[unit as keyof typeof DURATION_UNITS],
  };
}

/** A duration as `--ratelimit` takes it, in its largest whole unit: 60000 -> 1m. */
function duration(ms: number): string {
  const [unit, size] = Object.entries(DURATION_UNITS).find(([, size]) => ms % size === 0) ?? ["ms", 1];
  return `${ms / size}${unit}`;
}

/** `--credits <n>`: the balance. */
function balance(values: Values): number {
  return integer(str(values.credits) ?? "", "--credits");
}

/** `--refill <amount>/<day|month>`, or undefined when absent. */
function refill(values: Values): CreditsInput["refill"] {
  const text = str(values.refill);
  if (text === undefined) return undefined;
  const match = /^(\d+)\/(day|month)$/.exec(text);
  if (!match) throw new UsageError(`--refill must be <amount>/day or <amount>/month, e.g. 1000/month (got "${text}")`);
  return { amount: Number(match[1]), interval: match[2] as "day" | "month" };
}

/**
 * The credits change of `keys update`: null for --no-credits, undefined for none, else the new
 * balance with its refill (undefined: keep the key's; null for --no-refill).
 */
function creditsChange(values: Values): CreditsInput | null | undefined {
  const hasRefill = values.refill !== undefined || values["no-refill"] === true;
  if (values["no-credits"]) {
    if (values.credits !== undefined || hasRefill)
      throw new UsageError("--no-credits contradicts --credits, --refill and --no-refill");
    return null;
  }
  if (values.credits === undefined) {
    if (hasRefill) throw new UsageError("--refill and --no-refill need --credits <n> (the balance to set)");
    return undefined;
  }
  if (values.refill !== undefined && values["no-refill"])
    throw new UsageError("--refill and --no-refill contradict each other");
  return { remaining: balance(values), refill: values["no-refill"] ? null : refill(values) };
}

async function client(values: Values, needsToken = true): Promise<LatchkeyClient> {
  const config = await loadConfig();
  const url = str(values.url) ?? config.url;
  if (!url) throw new LoginNeeded();
  if (needsToken && !config.token) throw new LoginNeeded();
  return new LatchkeyClient({ baseUrl: baseUrl(url), token: config.token });
}

/** `keys disable` and `keys enable`: a PATCH of `enabled` alone. */
function enabling(enabled: boolean): Command {
  return {
    options: {},
    positionals: 1,
    async run(values, [id]) {
      const key = await (await client(values)).update(id ?? "", { enabled });
      if (values.json) printJson(key);
      else note(enabled ? `Enabled ${key.id}.` : `Disabled ${key.id}: it fails with DISABLED until enabled again.`);
      return EXIT.ok;
    },
  };
}

/** A key just created or rotated: the key itself to stdout, once, and nowhere else. */
function showNewKey(values: Values, created: { key: string }, summary: string): void {
  if (values.json) printJson(created);
  else {
    process.stdout.write(created.key + "\n");
    note(`${summary} It is shown only now: store it.`);
  }
}

/** A key's settings, as JSON or as a field/value table. */
function showKey(values: Values, key: ApiKey): void {
  if (values.json) printJson(key);
  else
    printTable(
      ["field", "value"],
      Object.entries(key).map(([field, value]) => [
        field,
        field === "ratelimits"
          ? rateLimits(key.ratelimits)
          : field === "credits"
            ? creditsText(key.credits)
            : display(value),
      ]),
    );
}

/**
 * A nullable setting of `keys update`: the values of `flag` (a new value), null when `clear` is set
 * (e.g. --no-expiry), undefined when neither is given; both at once are a usage error.
 */
function clearable(values: Values, flag: string, clear: string): string[] | null | undefined {
  const given = values[flag] === undefined ? undefined : [values[flag]].flat().map(String);
  if (!values[clear]) return given;
  if (given !== undefined) throw new UsageError(`--${flag} and --${clear} contradict each other`);
  return null;
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
      : key.enabled
        ? "active"
        : "disabled";
  return [
    key.id,
    key.name,
    key.start,
    key.scopes.join(" "),
    key.expires_at ?? "never",
    rateLimits(key.ratelimits),
    key.credits ? String(key.credits.remaining) : "-",
    status,
  ];
}

/** Rate limits as `--ratelimit` takes them: `api:100/1m burst:10/1s` ("-": none). */
function rateLimits(limits: readonly RateLimit[]): string {
  return limits.map((limit) => `${limit.name}:${limit.limit}/${duration(limit.duration_ms)}`).join(" ") || "-";
}

/** A key's credits for people: `42`, or `42, refill 1000/month`. */
function creditsText(credits: ApiKey["credits"]): string {
  if (credits === null) return "-";
  const { remaining, refill } = credits;
  return refill ? `${remaining}, refill ${refill.amount}/${refill.interval}` : String(remaining);
}

/** An event as a row: what changed as `field: old -> new`, all fields of a creation or import. */
function eventRow(event: AuditEvent): string[] {
  const changes = Object.entries(event.changes).map(([field, change]) =>
    event.action === "created" || event.action === "imported"
      ? `${field}: ${display(change.new)}`
      : `${field}: ${display(change.old)} -> ${display(change.new)}`,
  );
  return [event.at, event.key_id, event.action, event.actor, event.ip ?? "-", changes.join("; ")];
}

function display(value: unknown): string {
  if (value === null) return "-";
  return typeof value === "string" ? value : JSON.stringify(value);
}

const str = (value: Values[string]): string | undefined => (typeof value === "string" ? value : undefined);
const list = (value: Values[string]): string[] | undefined =>
  Array.isArray(value) && value.length ? value.map(String) : undefined;

/** The flag's value if it is one of `allowed`, undefined if absent, or a usage error. */
function oneOf<T extends string>(value: Values[string], allowed: readonly T[], flag: string): T | undefined {
  const text = str(value);
  if (text === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(text))
    throw new UsageError(`${flag} must be one of ${allowed.join(", ")}`);
  return text as T;
}

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
    // A 403 naming a `limit` is the owner's key quota: the token was fine, the request was refused.
    if (error.status === 401 || (error.status === 403 && error.problem.limit === undefined)) return EXIT.auth;
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
  const retry = error.retryAfter === null ? "" : `; retry after ${error.retryAfter} s`;
  return `${error.message}${status}${retry}${fields.join("")}`;
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
