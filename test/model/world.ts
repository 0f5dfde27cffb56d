/**
 * The model test's world: the actors of one run (people, a workspace, RPC, keys minted during the
 * run, an operator and the root keys it makes), the requests they send (HTTP through the Worker's fetch handler, RPC through the KeyService
 * entrypoint, both over one env with a small MAX_KEYS_PER_OWNER), the rows of D1 (the truth), and the
 * model: every key minted, by whom, and its secret (held in memory only).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { sha256Hex } from "../../src/keys/hash";
import { KeyService } from "../../src/rpc";
import { envWith, token, uniqueSub } from "../helpers";
import type { Powers, Usage } from "./within";

export const BASE = "https://latchkey.test";
/** Every request comes from this address: inside every allow-list of the model's pool but one. */
export const CLIENT_IP = "10.1.2.3";

export type PersonName = "P" | "Q" | "A" | "M";
/** P and Q: people without a workspace; A: an admin of workspace W; M: a member of W (not an admin). */
export const PEOPLE: readonly PersonName[] = ["P", "Q", "A", "M"];
export type OwnerName = PersonName | "W";
export type RpcOwner = "P" | "Q" | "W";

export interface Real {
  readonly env: Env;
  readonly quota: number;
  readonly subs: Readonly<Record<PersonName, string>>;
  readonly org: string;
  readonly jwts: Readonly<Record<PersonName, string>>;
  /** An operator (OPERATOR_ROLES): the one who makes and revokes root keys. */
  readonly operator: { readonly sub: string; readonly jwt: string };
}

/** One key minted during the run, as the test holds it. */
export interface Held {
  readonly label: string;
  readonly id: string;
  /** What a client sends (the plaintext key, or an imported key's token). Never leaves the test. */
  readonly secret: string;
  readonly hash: string;
  /** `user:<sub>` or `workspace:<org>`. */
  readonly owner: string;
  /** Who minted it: `person:P`, `rpc:W`, `key:k3`. */
  readonly minter: string;
  /** The key that minted it, when a key did (create, import, or rotate by a key). */
  readonly minterKey: Held | null;
  /** The root key that made it (create or import), when one did: the key is its owner's, outside any lineage. */
  readonly minterRoot?: RootHeld;
  readonly via: "create" | "import" | "rotate";
  /** Set when the key was rotated: its expiry before, and the one the rotation gave it. */
  rotation?: { before: number | null; set: number | null };
}

/** A legacy token (a key another system issued), owned by `trueOwner`. */
export interface Token {
  readonly label: string;
  readonly sends: string;
  /** The strings a response must never carry (the token, its secret part). */
  readonly secrets: readonly string[];
  readonly hash: string;
  readonly format: "sanctum" | "opaque";
  readonly trueOwner: OwnerName;
}

/** A root key made during the run (operator-made; service/root-keys.ts), as the test holds it. */
export interface RootHeld {
  readonly label: string;
  readonly id: string;
  /** The root key itself (`lk_root_…`). Never leaves the test. */
  readonly secret: string;
  readonly hash: string;
  /** Its owner patterns and scopes, as the create answered them. */
  readonly owners: readonly string[];
  readonly scopes: readonly string[];
}

export interface Model {
  readonly keys: Held[];
  /** The root keys made during the run. */
  readonly roots: RootHeld[];
  readonly tokens: readonly Token[];
  /** Keys revoked with `cascade` (by anyone): nothing their holder received may verify any more. */
  readonly cascaded: Held[];
  /** What each step of this run did, in order (a failure prints it). */
  readonly log: string[];
}

export type ActorSpec =
  | { readonly t: "person"; readonly who: PersonName }
  | { readonly t: "rpc"; readonly owner: RpcOwner }
  | { readonly t: "key"; readonly pick: number }
  /** A key the step was given when it ran (a chain step's own keys), not drawn. */
  | { readonly t: "held"; readonly key: Held };

export type Actor =
  | { readonly t: "person"; readonly who: PersonName; readonly name: string }
  | { readonly t: "rpc"; readonly owner: RpcOwner; readonly name: string }
  | { readonly t: "key"; readonly key: Held; readonly name: string };

/** Who acts in a root key's steps: a root key, the operator (or another caller trying), or the clock. */
export type RootActor =
  | { readonly t: "root"; readonly root: RootHeld; readonly name: string }
  | { readonly t: "operator" | "clock"; readonly name: string }
  | Actor;

/** Picks below this choose among the keys live in D1 (when there are any); the others among all keys minted. */
export const LIVE_PICKS = 80;
export const PICKS = 100;

/** The key a pick (0 to PICKS - 1) stands for: mostly a live one, sometimes any (dead keys act and are acted on too). */
export function pickKey(model: Model, pick: number, rows: ReadonlyMap<string, Row>): Held {
  const now = Date.now();
  const alive = model.keys.filter((key) => {
    const row = rows.get(key.id);
    return row !== undefined && live(row, now);
  });
  const from = pick < LIVE_PICKS && alive.length > 0 ? alive : model.keys;
  return from[pick % from.length]!;
}

export function resolveActor(spec: ActorSpec, model: Model, rows: ReadonlyMap<string, Row>): Actor {
  if (spec.t === "person") return { ...spec, name: `person:${spec.who}` };
  if (spec.t === "rpc") return { ...spec, name: `rpc:${spec.owner}` };
  if (spec.t === "held") return { t: "key", key: spec.key, name: `key:${spec.key.label}` };
  const key = pickKey(model, spec.pick, rows);
  return { t: "key", key, name: `key:${key.label}` };
}

export function specText(spec: ActorSpec): string {
  if (spec.t === "held") return `key:${spec.key.label}`;
  return spec.t === "person" ? `person:${spec.who}` : spec.t === "rpc" ? `rpc:${spec.owner}` : `key#${spec.pick}`;
}

/** The model's env: a small quota, and no failed-authentication or verify-miss limiter (dead keys are used on purpose). */
export async function newReal(quota: number): Promise<Real> {
  const testEnv = envWith({
    MAX_KEYS_PER_OWNER: String(quota),
    AUTH_FAILURE_LIMITER: undefined,
    AUTH_FAILURE_LIMITER_NO_IP: undefined,
    VERIFY_MISS_LIMITER: undefined,
  });
  const subs = { P: uniqueSub("mp"), Q: uniqueSub("mq"), A: uniqueSub("ma"), M: uniqueSub("mm") };
  const operatorSub = uniqueSub("mo");
  const org = uniqueSub("mw");
  const jwts = {
    P: await token(subs.P),
    Q: await token(subs.Q),
    A: await token(subs.A, { org }),
    M: await token(subs.M, { org, roles: [] }),
  };
  const operator = { sub: operatorSub, jwt: await token(operatorSub, { roles: ["operator"] }) };
  return { env: testEnv, quota, subs, org, jwts, operator };
}

export function ownerOf(real: Real, name: OwnerName): string {
  return name === "W" ? `workspace:${real.org}` : `user:${real.subs[name]}`;
}

export function rpcOwner(real: Real, name: RpcOwner): { type: "user" | "workspace"; id: string } {
  return name === "W" ? { type: "workspace", id: real.org } : { type: "user", id: real.subs[name] };
}

// ---- Requests

export interface Answer {
  /** HTTP status; for RPC 200 (or 204 for a revoke) on success, else the status its error code stands for. */
  readonly status: number;
  readonly body: unknown;
  /** Everything the caller received, as text (body and headers), for the secrecy check. */
  readonly text: string;
  readonly cacheControl: string | null;
  readonly route: string;
}

export async function http(real: Real, method: string, path: string, auth?: string, body?: unknown): Promise<Answer> {
  const headers = new Headers({ "cf-connecting-ip": CLIENT_IP });
  if (auth) headers.set("authorization", `Bearer ${auth}`);
  if (body !== undefined) headers.set("content-type", "application/json");
  const ctx = createExecutionContext();
  const request = new Request<unknown, IncomingRequestCfProperties>(BASE + path, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const response = await worker.fetch(request, real.env, ctx);
  await waitOnExecutionContext(ctx);
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    parsed = text;
  }
  const headerText = [...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
  return {
    status: response.status,
    body: parsed,
    text: `${headerText}\n\n${text}`,
    cacheControl: response.headers.get("cache-control"),
    route: `${method} ${path}`,
  };
}

const RPC_STATUS: Record<string, number> = {
  not_found: 404,
  invalid: 422,
  forbidden: 403,
  quota_exceeded: 403,
  rate_limited: 429,
  conflict: 409,
  unavailable: 503,
};

/** Calls a KeyService method; its refusals (`[code] ...`) become the status they stand for. */
export async function rpc(real: Real, method: string, run: (service: KeyService) => Promise<unknown>): Promise<Answer> {
  const ctx = createExecutionContext();
  const service = new KeyService(ctx, real.env);
  let status = method === "revoke" ? 204 : 200;
  let body: unknown = null;
  try {
    body = (await run(service)) ?? null;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const code = /^\[([a-z_]+)\]/.exec(message)?.[1];
    const mapped = code === undefined ? undefined : RPC_STATUS[code];
    if (mapped === undefined) throw new Error(`RPC ${method} failed unexpectedly: ${message}`);
    status = mapped;
    body = { message };
  }
  await waitOnExecutionContext(ctx);
  return { status, body, text: JSON.stringify(body), cacheControl: null, route: `rpc.${method}` };
}

// ---- D1, the truth

export interface Row {
  readonly id: string;
  readonly hash: string;
  readonly owner: string;
  readonly scopes: string[];
  readonly resources: string[] | null;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly enabled: boolean;
  readonly allowedIps: string[] | null;
  readonly limits: { ratelimits?: unknown[]; credits?: unknown } | null;
  readonly usageId: string | null;
  readonly createdBy: string;
  readonly parentId: string | null;
  /** The row as stored, but for `last_used_at` (verification writes it): what "changed" compares. */
  readonly raw: string;
  readonly limitsRaw: string | null;
}

/** Every row of the run's owners, by id. */
export async function readRows(real: Real): Promise<Map<string, Row>> {
  const ids = [...Object.values(real.subs), real.org];
  const { results } = await real.env.DB.prepare(
    `SELECT * FROM api_keys WHERE owner_id IN (${ids.map(() => "?").join(", ")})`,
  )
    .bind(...ids)
    .all<Record<string, unknown>>();
  const rows = new Map<string, Row>();
  for (const r of results) {
    const { last_used_at: _, ...rest } = r;
    const json = <T>(v: unknown): T | null => (v === null || v === undefined ? null : (JSON.parse(String(v)) as T));
    rows.set(String(r.id), {
      id: String(r.id),
      hash: String(r.hash),
      owner: `${String(r.owner_type)}:${String(r.owner_id)}`,
      scopes: json<string[]>(r.scopes) ?? [],
      resources: json<string[]>(r.resources),
      expiresAt: (r.expires_at as number | null) ?? null,
      revokedAt: (r.revoked_at as number | null) ?? null,
      enabled: Number(r.enabled) !== 0,
      allowedIps: json<string[]>(r.allowed_ips),
      limits: json(r.limits),
      usageId: (r.usage_id as string | null) ?? null,
      createdBy: String(r.created_by),
      parentId: (r.parent_id as string | null) ?? null,
      raw: JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b))),
      limitsRaw: (r.limits as string | null) ?? null,
    });
  }
  return rows;
}

export const powersOf = (row: Row): Powers => row;

export function usageOf(row: Row): Usage {
  const limits = row.limits;
  const limited = !!limits && ((limits.ratelimits?.length ?? 0) > 0 || (limits.credits ?? null) !== null);
  return { limited, chain: row.usageId ?? row.id };
}

/** Live as the quota counts it (and as management requires of a key actor): unrevoked, enabled, unexpired. */
export function live(row: Row, now: number): boolean {
  return row.revokedAt === null && row.enabled && (row.expiresAt === null || row.expiresAt > now);
}

/** Dead for good: revoked, or past its expiry. */
export function dead(row: Row | undefined, now: number): boolean {
  return row === undefined || row.revokedAt !== null || (row.expiresAt !== null && row.expiresAt <= now);
}

export async function hashOf(secret: string): Promise<string> {
  return sha256Hex(secret);
}

// ---- Root keys in D1

export interface RootRow {
  readonly id: string;
  readonly createdBy: string;
  readonly owners: readonly string[];
  readonly scopes: readonly string[];
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  /** The row as stored, but for `last_used_at` (using it writes that). */
  readonly raw: string;
}

/** Every root key made (or attempted) by the run's people and operator, by id. */
export async function readRoots(real: Real): Promise<Map<string, RootRow>> {
  const makers = [...Object.values(real.subs), real.operator.sub].map((sub) => `user:${sub}`);
  const { results } = await real.env.DB.prepare(
    `SELECT * FROM root_keys WHERE created_by IN (${makers.map(() => "?").join(", ")})`,
  )
    .bind(...makers)
    .all<Record<string, unknown>>();
  const rows = new Map<string, RootRow>();
  for (const r of results) {
    const { last_used_at: _, ...rest } = r;
    rows.set(String(r.id), {
      id: String(r.id),
      createdBy: String(r.created_by),
      owners: JSON.parse(String(r.owners)) as string[],
      scopes: JSON.parse(String(r.scopes)) as string[],
      expiresAt: (r.expires_at as number | null) ?? null,
      revokedAt: (r.revoked_at as number | null) ?? null,
      raw: JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b))),
    });
  }
  return rows;
}

/** A root key that works now: unrevoked and unexpired. */
export function rootLive(row: RootRow | undefined, now: number): boolean {
  return row !== undefined && row.revokedAt === null && (row.expiresAt === null || row.expiresAt > now);
}

/**
 * The model's own reading of owner patterns (not src's): `user:*`, `workspace:*`, or one owner exactly.
 * `owner` is `<type>:<id>`.
 */
export function patternsCover(patterns: readonly string[], owner: string): boolean {
  const type = owner.slice(0, owner.indexOf(":"));
  return patterns.some((pattern) => pattern === owner || pattern === `${type}:*`);
}
