/**
 * A typed client for latchkey's HTTP API that runs wherever `fetch` does (Node 20+, Workers, Deno,
 * Bun), with no dependencies. Every call goes through `send`, which owns the transport policy in one
 * place: a timeout per attempt, bounded retries on 503 (honouring `Retry-After`) and on network
 * failures, and RFC 9457 problems turned into `LatchkeyError`. A new route is one small method that
 * names its method, path and body; see `CLIENT_OPERATIONS` for the list checked against /openapi.json.
 *
 * Read-your-writes: each client keeps the newest `Latchkey-Bookmark` latchkey answered with and sends
 * it with every management call, so a read after a write sees it even when a D1 replica serves the
 * read (`bookmark` reads or sets it; `ClientOptions.bookmark` starts from one).
 */
import { LatchkeyError, syntheticProblem } from "./errors.js";
import type {
  ApiKey,
  CreateKeyInput,
  CreatedApiKey,
  CreditsOperation,
  CreditsResult,
  EventList,
  ImportItem,
  ImportResult,
  KeyList,
  CreateRootKeyInput,
  CreatedRootKey,
  ListEventsOptions,
  ListKeysOptions,
  ListRootKeysOptions,
  OwnerFilter,
  Problem,
  RootKey,
  RootKeyList,
  RevokeOptions,
  RotateKeyInput,
  UpdateKeyInput,
  UsageQuery,
  UsageReport,
  VerifyOptions,
  VerifyResult,
  WhoAmI,
} from "./types.js";
import { VerdictCache } from "./verdict-cache.js";

export interface ClientOptions {
  /** latchkey's base URL, e.g. `https://keys.example.com` (a path prefix is kept). */
  baseUrl: string | URL;
  /** A JWT, or an API key with `keys:read` / `keys:write`, for the management routes. `verify` needs none. */
  token?: string | undefined;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch | undefined;
  /** Each attempt's time limit (default 10 s). */
  timeoutMs?: number | undefined;
  /** Attempts per call, the first included (default 3; 1 disables retries). */
  maxAttempts?: number | undefined;
  /** A `Retry-After` longer than this is not waited for: the 503 is thrown instead (default 10 s). */
  maxRetryDelayMs?: number | undefined;
  /**
   * How long `verify` may reuse a verdict (default 0: off; at most 10 s, latchkey's revocation
   * bound). A key revoked at latchkey keeps passing here for up to this long more.
   */
  verifyCacheTtlMs?: number | undefined;
  /** The most verdicts the cache holds (default 10,000; the oldest go first). */
  verifyCacheMaxEntries?: number | undefined;
  /**
   * Start from this `Latchkey-Bookmark` (one a response of latchkey carried, e.g. kept by another
   * process): this client's reads then see everything that response saw. Default: none.
   */
  bookmark?: string | undefined;
}

/** The header latchkey's management API carries its D1 bookmark in (read-your-writes across requests). */
export const BOOKMARK_HEADER = "Latchkey-Bookmark";

export interface CallOptions {
  /** Aborts the call, retries included; the abort reason is thrown as is. */
  signal?: AbortSignal | undefined;
}

export interface CreateOptions extends CallOptions {
  /**
   * Makes retries of this create safe: latchkey answers a repeated key with the first result. One is
   * generated for every create; pass your own to make your own retries (across processes) safe too.
   */
  idempotencyKey?: string | undefined;
}

/** An HTTP operation the client performs. */
interface Operation {
  readonly method: "GET" | "POST" | "PATCH" | "DELETE";
  readonly path: string;
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Whether the route needs the token. */
  readonly auth: boolean;
}

/** Every operation the client calls, as `METHOD /path` with OpenAPI path templates (checked against /openapi.json). */
export const CLIENT_OPERATIONS = [
  "POST /v1/keys",
  "GET /v1/keys",
  "GET /v1/keys/{id}",
  "PATCH /v1/keys/{id}",
  "POST /v1/keys/{id}/rotate",
  "DELETE /v1/keys/{id}",
  "POST /v1/keys/{id}/credits",
  "GET /v1/keys/{id}/usage",
  "GET /v1/keys/{id}/events",
  "GET /v1/events",
  "POST /v1/keys/import",
  "POST /v1/verify",
  "GET /v1/whoami",
  "POST /v1/root-keys",
  "GET /v1/root-keys",
  "GET /v1/root-keys/{id}",
  "POST /v1/root-keys/{id}/rotate",
  "DELETE /v1/root-keys/{id}",
] as const;

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_ATTEMPTS = 3;
const DEFAULT_MAX_RETRY_DELAY_MS = 10_000;
/** The wait before a retry when a 503 names none, doubled per attempt. */
const BACKOFF_MS = 250;

export class LatchkeyClient {
  private readonly base: string;
  private readonly token: string | undefined;
  private readonly fetcher: typeof fetch;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly maxRetryDelayMs: number;
  private readonly verdicts: VerdictCache;
  private latestBookmark: string | null;

  constructor(options: ClientOptions) {
    this.base = String(options.baseUrl).replace(/\/+$/, "");
    if (!/^https?:\/\//.test(this.base)) throw new TypeError(`baseUrl must be an http(s) URL, not "${this.base}"`);
    this.token = options.token;
    // Bound, so a runtime's fetch is not called with this client as its receiver.
    const fetcher = options.fetch ?? globalThis.fetch;
    this.fetcher = (input, init) => fetcher(input, init);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? DEFAULT_ATTEMPTS));
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS;
    this.verdicts = new VerdictCache(options.verifyCacheTtlMs ?? 0, options.verifyCacheMaxEntries ?? 10_000);
    this.latestBookmark = options.bookmark || null;
  }

  /**
   * The newest `Latchkey-Bookmark` this client received (null: none yet), sent with its next management
   * call. Set it to carry read-your-writes over from elsewhere (another client, another process), or to
   * null to read from the nearest replica without it.
   */
  get bookmark(): string | null {
    return this.latestBookmark;
  }

  set bookmark(value: string | null) {
    this.latestBookmark = value || null;
  }

  /** Keeps the response's bookmark when it is newer than the one held (bookmarks sort oldest first). */
  private remember(response: Response): void {
    const received = response.headers.get(BOOKMARK_HEADER);
    if (received && (this.latestBookmark === null || received > this.latestBookmark)) this.latestBookmark = received;
  }

  /** Creates a key. `key` in the result is shown only this once: store it or hand it over now. */
  create(input: CreateKeyInput, options: CreateOptions = {}): Promise<CreatedApiKey> {
    const idempotencyKey = options.idempotencyKey ?? crypto.randomUUID();
    const headers = { "Idempotency-Key": idempotencyKey };
    return this.send({ method: "POST", path: "/v1/keys", body: input, headers, auth: true }, options);
  }

  /** One page of the caller's keys, newest first; `status`, `created_by` and `owner_type` filter them. */
  list(options: ListKeysOptions = {}, call: CallOptions = {}): Promise<KeyList> {
    return this.send({ method: "GET", path: "/v1/keys", query: { ...options }, auth: true }, call);
  }

  /** Every page of the caller's keys, following `next_cursor`: `for await (const page of client.pages())`. */
  pages(options: ListKeysOptions = {}, call: CallOptions = {}): AsyncGenerator<KeyList, void, undefined> {
    return follow(options.cursor, (cursor) => this.list({ ...options, cursor }, call));
  }

  get(id: string, call: CallOptions = {}): Promise<ApiKey> {
    return this.send({ method: "GET", path: keyPath(id), auth: true }, call);
  }

  /** Changes a key's settings (`enabled: false` disables it); fields left out are unchanged, null clears. */
  update(id: string, input: UpdateKeyInput, call: CallOptions = {}): Promise<ApiKey> {
    return this.send({ method: "PATCH", path: keyPath(id), body: input, auth: true }, call);
  }

  /**
   * Replaces a key with a new one, shown only this once; the old key keeps working for
   * `grace_seconds` (default 0). Not retried: a retry after a lost answer would rotate again.
   */
  rotate(id: string, input: RotateKeyInput = {}, call: CallOptions = {}): Promise<CreatedApiKey> {
    return this.send({ method: "POST", path: `${keyPath(id)}/rotate`, body: input, auth: true }, call, 1);
  }

  /** One page of the audit log, newest first: of one key when `keyId` is given, else of every key the caller sees. */
  events(
    options: ListEventsOptions & OwnerFilter & { keyId?: string | undefined } = {},
    call: CallOptions = {},
  ): Promise<EventList> {
    const { keyId, ...query } = options;
    const path = keyId === undefined ? "/v1/events" : `${keyPath(keyId)}/events`;
    return this.send({ method: "GET", path, query, auth: true }, call);
  }

  /** Every page of the audit log `events` would give, following `next_cursor`. */
  eventPages(
    options: ListEventsOptions & OwnerFilter & { keyId?: string | undefined } = {},
    call: CallOptions = {},
  ): AsyncGenerator<EventList, void, undefined> {
    return follow(options.cursor, (cursor) => this.events({ ...options, cursor }, call));
  }

  /**
   * Revokes a key (idempotent). With `{ cascade: true }`, also every key it created, and theirs, in
   * one write: all or none.
   */
  async revoke(id: string, options: RevokeOptions & CallOptions = {}): Promise<void> {
    const query = { cascade: options.cascade === true ? true : undefined };
    await this.send({ method: "DELETE", path: keyPath(id), query, auth: true }, options);
  }

  /**
   * Sets, raises or lowers a key's credit balance; the balance afterwards (null when latchkey's counter
   * could not answer just then: the operation is recorded and applies all the same, so do not repeat
   * it). Not retried, as a retried increment after a lost answer would count twice.
   */
  credits(id: string, input: CreditsOperation, call: CallOptions = {}): Promise<CreditsResult> {
    return this.send({ method: "POST", path: `${keyPath(id)}/credits`, body: input, auth: true }, call, 1);
  }

  /** A key's verifications per hour or day, by outcome (the last half minute may not be in yet). */
  usage(id: string, query: UsageQuery = {}, call: CallOptions = {}): Promise<UsageReport> {
    return this.send({ method: "GET", path: `${keyPath(id)}/usage`, query: { ...query }, auth: true }, call);
  }

  /**
   * Imports legacy keys by hash (1-100 per call). Retrying a batch is safe: a hash is stored once,
   * so a batch retried after a lost response reports its own earlier imports as conflicts.
   */
  import(keys: readonly ImportItem[], call: CallOptions = {}): Promise<ImportResult> {
    return this.send({ method: "POST", path: "/v1/keys/import", body: { keys }, auth: true }, call);
  }

  /**
   * Creates a root key (the token must be an operator's JWT): a backend's credential for every owner
   * its `owners` cover. `key` is shown only this once. Not retried: a retry would make a second one.
   */
  createRootKey(input: CreateRootKeyInput, call: CallOptions = {}): Promise<CreatedRootKey> {
    return this.send({ method: "POST", path: "/v1/root-keys", body: input, auth: true }, call, 1);
  }

  /** One page of root keys, newest first (operators only). */
  listRootKeys(options: ListRootKeysOptions = {}, call: CallOptions = {}): Promise<RootKeyList> {
    return this.send({ method: "GET", path: "/v1/root-keys", query: { ...options }, auth: true }, call);
  }

  getRootKey(id: string, call: CallOptions = {}): Promise<RootKey> {
    return this.send({ method: "GET", path: rootKeyPath(id), auth: true }, call);
  }

  /** Replaces a root key (shown once); the old one works for `grace_seconds` more. Not retried. */
  rotateRootKey(id: string, input: RotateKeyInput = {}, call: CallOptions = {}): Promise<CreatedRootKey> {
    return this.send({ method: "POST", path: `${rootKeyPath(id)}/rotate`, body: input, auth: true }, call, 1);
  }

  /** Revokes a root key (idempotent): refused at once; the keys it made keep working. */
  async revokeRootKey(id: string, call: CallOptions = {}): Promise<void> {
    await this.send({ method: "DELETE", path: rootKeyPath(id), auth: true }, call);
  }

  /** Who the token is. */
  whoami(call: CallOptions = {}): Promise<WhoAmI> {
    return this.send({ method: "GET", path: "/v1/whoami", auth: true }, call);
  }

  /**
   * latchkey's verdict on a key, optionally for a scope and a resource, spending `cost` credits of a
   * key with limits. A well-formed request always resolves (check `valid` and `code`); only a failure
   * to get a verdict throws. A key with limits is always asked afresh, even with the cache on.
   */
  async verify(key: string, options: VerifyOptions = {}, call: CallOptions = {}): Promise<VerifyResult> {
    const checks: VerifyOptions = {};
    if (options.scope !== undefined) checks.scope = options.scope;
    if (options.resource !== undefined) checks.resource = options.resource;
    if (options.ip !== undefined) checks.ip = options.ip;
    if (options.cost !== undefined) checks.cost = options.cost;
    const entry = this.verdicts.enabled ? await this.verdicts.entryFor(key, checks) : null;
    const cached = entry === null ? undefined : this.verdicts.get(entry);
    if (cached !== undefined) return cached;
    const verdict = await this.send<VerifyResult>(
      { method: "POST", path: "/v1/verify", body: { key, ...checks }, auth: false },
      call,
    );
    if (entry !== null) this.verdicts.set(entry, verdict);
    return verdict;
  }

  /** Performs an operation: the one place for headers, timeouts, retries and errors. */
  private async send<T>(operation: Operation, call: CallOptions, maxAttempts = this.maxAttempts): Promise<T> {
    const url = new URL(this.base + operation.path);
    for (const [name, value] of Object.entries(operation.query ?? {}))
      if (value !== undefined) url.searchParams.set(name, String(value));
    const headers = new Headers({ Accept: "application/json", ...operation.headers });
    if (operation.body !== undefined) headers.set("Content-Type", "application/json");
    if (operation.auth) {
      if (!this.token) throw new LatchkeyError(401, syntheticProblem(401, "Unauthorized", "This call needs a token"));
      headers.set("Authorization", `Bearer ${this.token}`);
      if (this.latestBookmark !== null) headers.set(BOOKMARK_HEADER, this.latestBookmark);
    }
    const body = operation.body === undefined ? undefined : JSON.stringify(operation.body);

    for (let attempt = 1; ; attempt++) {
      let failure: LatchkeyError;
      try {
        const response = await this.attempt(url, { method: operation.method, headers, body }, call.signal);
        this.remember(response);
        if (response.ok) return (response.status === 204 ? undefined : await response.json()) as T;
        failure = await problemError(response);
        if (failure.status !== 503) throw failure;
      } catch (error) {
        if (!(error instanceof LatchkeyError) || !error.unavailable) throw error;
        failure = error;
      }
      const delay = failure.retryAfter !== null ? failure.retryAfter * 1000 : BACKOFF_MS * 2 ** (attempt - 1);
      if (attempt >= maxAttempts || delay > this.maxRetryDelayMs) throw failure;
      await sleep(delay, call.signal);
    }
  }

  /** One request with this client's time limit; a network failure or timeout becomes status 0. */
  private async attempt(url: URL, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    try {
      return await this.fetcher(url, { ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const timedOut = timeout.aborted;
      const detail = timedOut ? `No answer within ${this.timeoutMs} ms` : String((error as Error)?.message ?? error);
      throw new LatchkeyError(0, syntheticProblem(0, timedOut ? "Timeout" : "Network error", detail), null, {
        cause: error,
      });
    }
  }
}

/** The pages from `cursor` on, each fetched by `page`, until one has no `next_cursor`. */
async function* follow<P extends { next_cursor: string | null }>(
  cursor: string | undefined,
  page: (cursor: string | undefined) => Promise<P>,
): AsyncGenerator<P, void, undefined> {
  do {
    const current = await page(cursor);
    yield current;
    cursor = current.next_cursor ?? undefined;
  } while (cursor !== undefined);
}

function keyPath(id: string): string {
  return `/v1/keys/${encodeURIComponent(id)}`;
}

function rootKeyPath(id: string): string {
  return `/v1/root-keys/${encodeURIComponent(id)}`;
}

/** A client for latchkey at `baseUrl`. */
export function createClient(options: ClientOptions): LatchkeyClient {
  return new LatchkeyClient(options);
}

/** The error a failed response means, with latchkey's problem document when it sent one. */
async function problemError(response: Response): Promise<LatchkeyError> {
  let problem: Problem | undefined;
  const type = response.headers.get("content-type") ?? "";
  if (/^application\/(problem\+)?json/i.test(type)) {
    const parsed: unknown = await response.json().catch(() => undefined);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) problem = parsed as Problem;
  } else {
    await response.body?.cancel();
  }
  problem ??= syntheticProblem(response.status, response.statusText || `HTTP ${response.status}`);
  return new LatchkeyError(response.status, problem, retryAfterSeconds(response.headers.get("retry-after")));
}

/** `Retry-After` as seconds: a delay or an HTTP date (RFC 9110 §10.2.3); null when absent or unreadable. */
function retryAfterSeconds(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });
}
