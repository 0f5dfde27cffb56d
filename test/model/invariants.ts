/**
 * The invariants the model test checks after every step, each reading the truth from D1 (and, for
 * a cascade, from POST /v1/verify). Each throws an Error naming the invariant; fast-check then shrinks
 * the sequence of steps and prints it.
 *
 * (a) attenuation: no key is stronger than the key that minted it (within.ts), at mint time and after
 *     every later change (a PATCH of the key itself included);
 * (b) lineage: after a cascade revocation of K, nothing K's holder received (minted by K, or by a key
 *     K's holder received, by create, import or rotate) is live or verifies;
 * (c) reach: a step by a key changed only rows that key may manage: its owner's, each within its
 *     powers before and after, and no limits or credits when the key has usage limits of its own;
 * (d) quota: no owner holds more live keys than MAX_KEYS_PER_OWNER;
 * (e) secrecy: no answer carries a key (its format, or any secret the test holds) but the one a create
 *     or rotate just minted, and that answer is `Cache-Control: no-store`;
 * (f) import ownership: a legacy token is only ever stored under the owner who issued it;
 * (g) import secrecy: an item whose hash another owner holds is answered exactly as one whose hash the
 *     caller's own owner holds (`conflict`, no id): nothing in the answer says which owner holds it;
 * (h)-(k) root keys (root-invariants.ts): never a product key; a root key's reach (owners its patterns
 *     cover, keys:read to read, keys:write to write); the keys it makes are their owners' and outlive it;
 *     a revoked or expired root key is refused at once, and only an operator makes or revokes one;
 * plus: no answer is a 500, and no row appears that no answer reported.
 */
import {
  CLIENT_IP,
  type Actor,
  type Answer,
  type Held,
  type Model,
  type Real,
  type RootActor,
  type RootRow,
  type Row,
  dead,
  http,
  live,
  ownerOf,
  powersOf,
  usageOf,
} from "./world";
import { type Powers, excess, looserUsage } from "./within";
import { type RootFacts, checkRootInvariants } from "./root-invariants";

/**
 * The invariants checked (letters a-k; null: all). `npm run model -- --only c,g` narrows a long run to
 * some, to hunt for a second break while the first is being fixed.
 */
export const checking: { only: ReadonlySet<string> | null } = { only: null };
const on = (letter: string) => checking.only === null || checking.only.has(letter);

export class InvariantError extends Error {
  constructor(invariant: string, detail: string) {
    super(`invariant ${invariant} broken: ${detail}`);
  }
}

/**
 * Refusals are always acceptable outcomes; so is a dead key's 401, and a 503 (storage or a usage
 * counter that did not answer in time, as on a busy machine: retry later). Never a 500, never a 400
 * (the model's requests are well-formed).
 */
const ACCEPTABLE = new Set([200, 201, 204, 401, 403, 404, 409, 422, 429, 503]);

export function checkStatus(answer: Answer): void {
  if (!ACCEPTABLE.has(answer.status)) {
    throw new InvariantError("status", `${answer.route} answered ${answer.status}: ${answer.text.slice(-300)}`);
  }
}

const KEY_FORMAT = /lk_[0-9A-Za-z]{49}/g;

/** (e): `minted`, the key a create or rotate just returned (the only secret it may carry). */
export function checkSecrecy(answer: Answer, model: Model, minted?: string): void {
  if (!on("e")) return;
  const found = new Set(answer.text.match(KEY_FORMAT) ?? []);
  for (const key of model.keys) if (answer.text.includes(key.secret)) found.add(key.secret);
  for (const t of model.tokens) for (const s of t.secrets) if (answer.text.includes(s)) found.add(s);
  for (const root of model.roots) if (answer.text.includes(root.secret)) found.add(root.secret);
  if (minted !== undefined) {
    if (model.keys.some((k) => k.secret === minted) || model.roots.some((r) => r.secret === minted)) {
      throw new InvariantError("e (secrecy)", `${answer.route} returned a key the test already held`);
    }
    found.delete(minted);
    if (answer.route.startsWith("rpc.") === false && !/\bno-store\b/.test(answer.cacheControl ?? "")) {
      throw new InvariantError("e (secrecy)", `${answer.route} returned a new key without Cache-Control: no-store`);
    }
  }
  if (found.size > 0) {
    throw new InvariantError("e (secrecy)", `${answer.route} (${answer.status}) carried ${found.size} secret(s)`);
  }
}

/** A minter's powers for attenuation: a rotation's shortened expiry is the rotation's, not a narrowing of its lineage. */
function minterPowers(held: Held, row: Row): Powers {
  if (held.rotation && row.expiresAt === held.rotation.set)
    return { ...powersOf(row), expiresAt: held.rotation.before };
  return powersOf(row);
}

/** What of `row` exceeds its minter's `minterRow` (empty: within). */
export function beyondMinter(minter: Held, minterRow: Row, row: Row): string[] {
  const found = excess(minterPowers(minter, minterRow), powersOf(row));
  const usage = looserUsage(usageOf(minterRow), usageOf(row));
  return usage === null ? found : [...found, usage];
}

/** Everything K's holder received: K, and every key minted by a key in the set (create, import, rotate). */
export function received(model: Model, k: Held): Held[] {
  const set = new Set<Held>([k]);
  for (const key of model.keys) if (key.minterKey && set.has(key.minterKey)) set.add(key);
  return [...set];
}

export interface StepFacts {
  readonly actor: Actor | RootActor;
  readonly before: Map<string, Row>;
  readonly after: Map<string, Row>;
  /** The run's root keys in D1 before and after the step. */
  readonly rootsBefore: Map<string, RootRow>;
  readonly rootsAfter: Map<string, RootRow>;
  /** What a root key's step did (root-invariants.ts). */
  readonly root?: RootFacts;
  /** The keys this step minted (the model has them already). */
  readonly minted: readonly Held[];
  /** Set when this step revoked a key with cascade (successfully). */
  readonly cascaded?: Held;
  /** An import's items (hashes) and per-item results, for (g). */
  readonly imported?: {
    readonly owner: string;
    readonly hashes: readonly string[];
    readonly results: readonly { readonly status: string; readonly id?: string | null }[];
  };
}

export async function checkInvariants(model: Model, real: Real, facts: StepFacts): Promise<void> {
  const { before, after, actor } = facts;
  const now = Date.now();

  // No row appears that no answer reported.
  const mintedIds = new Set(facts.minted.map((k) => k.id));
  for (const id of after.keys()) {
    if (!before.has(id) && !mintedIds.has(id)) {
      throw new InvariantError("rows", `a row appeared (${id}, owner ${after.get(id)!.owner}) that no answer reported`);
    }
  }

  // (a) at mint time: against the minter as it was when it acted.
  for (const key of facts.minted) {
    const row = after.get(key.id);
    if (!row) throw new InvariantError("rows", `${key.label} was reported minted but is not in D1`);
    if (!key.minterKey || !on("a")) continue;
    const minterRow = before.get(key.minterKey.id);
    if (!minterRow)
      throw new InvariantError("a (attenuation)", `${key.label}'s minter ${key.minterKey.label} is not in D1`);
    const beyond = beyondMinter(key.minterKey, minterRow, row);
    if (beyond.length > 0) {
      throw new InvariantError(
        "a (attenuation)",
        `${key.label} (${key.via}) was minted stronger than its minter ${key.minterKey.label}: ${beyond.join("; ")}`,
      );
    }
  }

  // (a) after every change: each key against its minter as it is now (a dead minter holds nothing).
  for (const key of model.keys) {
    if (!key.minterKey || !on("a")) continue;
    const row = after.get(key.id);
    const minterRow = after.get(key.minterKey.id);
    if (!row || !minterRow || dead(row, now) || dead(minterRow, now)) continue;
    const beyond = beyondMinter(key.minterKey, minterRow, row);
    if (beyond.length > 0) {
      throw new InvariantError(
        "a (attenuation)",
        `${key.label} (${key.via} by ${key.minter}) is now stronger than its minter ${key.minterKey.label}: ${beyond.join("; ")}`,
      );
    }
  }

  // (b) lineage: nothing K's holder received outlives K's cascade.
  for (const k of on("b") ? model.cascaded : []) {
    for (const key of received(model, k)) {
      if (!dead(after.get(key.id), now)) {
        throw new InvariantError(
          "b (lineage)",
          `${key.label} (${key.via} by ${key.minter}) is still live after the cascade revocation of ${k.label}`,
        );
      }
    }
  }
  if (facts.cascaded && on("b")) {
    for (const key of received(model, facts.cascaded)) {
      const answer = await http(real, "POST", "/v1/verify", undefined, { key: key.secret, ip: CLIENT_IP, cost: 0 });
      checkStatus(answer);
      checkSecrecy(answer, model);
      if ((answer.body as { valid?: boolean } | null)?.valid === true) {
        throw new InvariantError(
          "b (lineage)",
          `${key.label} (${key.via} by ${key.minter}) still verifies after the cascade revocation of ${facts.cascaded.label}`,
        );
      }
    }
  }

  // (c) reach: a key changed only rows it may manage.
  if (actor.t === "key" && on("c")) {
    const actorRow = before.get(actor.key.id);
    for (const [id, old] of before) {
      const row = after.get(id);
      if (row && row.raw === old.raw) continue;
      const label = model.keys.find((k) => k.id === id)?.label ?? id;
      const why: string[] = [];
      if (!row) why.push("deleted");
      if (!actorRow || !live(actorRow, now + 0) || !ipAllowed(actorRow)) why.push(`${actor.name} was not live`);
      else {
        if (old.owner !== actorRow.owner) why.push(`owner ${old.owner} is not the actor's`);
        const beyond = [
          ...excess(powersOf(actorRow), powersOf(old)),
          ...(row ? excess(powersOf(actorRow), powersOf(row)) : []),
        ];
        if (beyond.length > 0) why.push(`beyond the actor: ${[...new Set(beyond)].join("; ")}`);
        if (row && row.limitsRaw !== old.limitsRaw && usageOf(actorRow).limited) {
          why.push("its limits or credits changed, and the actor has usage limits");
        }
      }
      if (why.length > 0) {
        throw new InvariantError(
          "c (reach)",
          `${actor.name} changed ${label}, which it may not manage: ${why.join("; ")}`,
        );
      }
    }
  }

  // (d) quota.
  const counts = new Map<string, number>();
  for (const row of after.values()) if (live(row, now)) counts.set(row.owner, (counts.get(row.owner) ?? 0) + 1);
  for (const [owner, count] of counts) {
    if (count > real.quota && on("d")) {
      throw new InvariantError(
        "d (quota)",
        `${owner} holds ${count} live keys, over MAX_KEYS_PER_OWNER = ${real.quota}`,
      );
    }
  }

  // (f) import ownership.
  for (const t of on("f") ? model.tokens : []) {
    for (const row of after.values()) {
      if (row.hash === t.hash && row.owner !== ownerOf(real, t.trueOwner)) {
        throw new InvariantError(
          "f (import ownership)",
          `token ${t.label} of ${t.trueOwner} is stored as a key of ${ownerName(real, row.owner)}`,
        );
      }
    }
  }

  // (g) import secrecy.
  if (facts.imported && on("g")) {
    const { owner, hashes, results } = facts.imported;
    results.forEach((result, i) => {
      if (result.status !== "conflict") return;
      const hash = hashes[i]!;
      const own = [...before.values()].some((row) => row.hash === hash && row.owner === owner);
      const repeated = hashes.slice(0, i).includes(hash);
      // A conflict answer is the same whoever holds the hash: never the holder's id, never more fields.
      const fields = Object.keys(result).sort().join(",");
      if (result.id == null && fields === CONFLICT_FIELDS) return;
      throw new InvariantError(
        "g (import secrecy)",
        `an import for ${ownerName(real, owner)} answered item ${i} (${own ? "own" : repeated ? "repeated" : "another owner's"} hash) with ${JSON.stringify(result)}, which tells a conflict apart`,
      );
    });
  }

  await checkRootInvariants(model, real, facts, on);
}

/** The fields of an import item's `conflict` answer: the same for every conflict. */
const CONFLICT_FIELDS = "hash,id,status";

function ipAllowed(row: Row): boolean {
  if (row.allowedIps === null) return true;
  return (
    excess(
      { scopes: [], resources: null, expiresAt: null, allowedIps: row.allowedIps },
      {
        scopes: [],
        resources: null,
        expiresAt: null,
        allowedIps: [CLIENT_IP],
      },
    ).length === 0
  );
}

export function ownerName(real: Real, owner: string): string {
  for (const who of ["P", "Q", "A", "M", "W"] as const) if (ownerOf(real, who) === owner) return who;
  return owner;
}
