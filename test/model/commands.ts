/**
 * The model test's steps (fast-check commands): create, import, rotate, PATCH, credits, revoke (with or
 * without cascade) and reads, each by a random actor, over HTTP or RPC. A step resolves its picks
 * against the keys minted so far, sends one request, updates the model with what the answer says,
 * and then checks every invariant (invariants.ts). `toString` says what the step did (a shrunk
 * failure prints it), or what it was drawn as when it did not run.
 */
import fc from "fast-check";
import {
  type Actor,
  type ActorSpec,
  type Answer,
  type Held,
  type Model,
  type OwnerName,
  type Real,
  type Row,
  PEOPLE,
  type PersonName,
  type RpcOwner,
  type Token,
  hashOf,
  live,
  http,
  ownerOf,
  readRoots,
  readRows,
  PICKS,
  pickKey,
  resolveActor,
  rpc,
  rpcOwner,
  specText,
} from "./world";
import { checkInvariants, checkSecrecy, checkStatus, type StepFacts } from "./invariants";

type Cmd = fc.AsyncCommand<Model, Real>;

// ---- What the steps draw from: small pools, so keys meet each other's powers often.

const SCOPES = [
  ["*"],
  ["keys:*", "metrics:read"],
  ["keys:write", "keys:read", "metrics:read"],
  ["keys:write", "metrics:read"],
  ["keys:write"],
  ["metrics:read"],
  ["metrics:*"],
  ["keys:write", "models:invoke"],
] as const;
const RESOURCES = [null, ["a"], ["a", "b"]] as const;
/** Hours after the run's start; null: never. */
const EXPIRIES = [null, 1, 2, 24] as const;
/** Every entry but the last holds CLIENT_IP. */
const ALLOWED_IPS = [null, null, ["10.0.0.0/8"], ["10.1.0.0/16"], ["10.1.2.3"], ["192.168.0.0/16"]] as const;
const LIMITS = ["credits", "ratelimit", "both"] as const;

export interface PowersSpec {
  scopes?: readonly string[];
  resources?: readonly string[] | null;
  expires?: number | null;
  ips?: readonly string[] | null;
}

const powersArb: fc.Arbitrary<PowersSpec> = fc.record(
  {
    scopes: fc.constantFrom(...SCOPES),
    resources: fc.constantFrom(...RESOURCES),
    expires: fc.constantFrom(...EXPIRIES),
    ips: fc.constantFrom(...ALLOWED_IPS),
  },
  { requiredKeys: [] },
);

export const actorArb: fc.Arbitrary<ActorSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.nat(PICKS - 1).map((pick): ActorSpec => ({ t: "key", pick })) },
  { weight: 2, arbitrary: fc.constantFrom(...PEOPLE).map((who): ActorSpec => ({ t: "person", who })) },
  { weight: 1, arbitrary: fc.constantFrom<RpcOwner>("P", "Q", "W").map((owner): ActorSpec => ({ t: "rpc", owner })) },
);

const HOUR = 3_600_000;

function expiresAt(real: Real & { t0: number }, hours: number | null | undefined): string | null | undefined {
  if (hours === undefined || hours === null) return hours;
  return new Date(real.t0 + hours * HOUR).toISOString();
}

function powersBody(real: Real & { t0: number }, p: PowersSpec): Record<string, unknown> {
  return {
    ...(p.scopes !== undefined ? { scopes: p.scopes } : {}),
    ...(p.resources !== undefined ? { resources: p.resources } : {}),
    ...(p.expires !== undefined ? { expires_at: expiresAt(real, p.expires) } : {}),
    ...(p.ips !== undefined ? { allowed_ips: p.ips } : {}),
  };
}

function limitsBody(limits: (typeof LIMITS)[number] | "none" | "clear" | undefined): Record<string, unknown> {
  const credits = { remaining: 1000 };
  const ratelimits = [{ name: "r", limit: 50, duration_ms: 60_000 }];
  switch (limits) {
    case "credits":
      return { credits };
    case "ratelimit":
      return { ratelimits };
    case "both":
      return { credits, ratelimits };
    case "clear":
      return { credits: null, ratelimits: [] };
    default:
      return {};
  }
}

const show = (body: unknown) => JSON.stringify(body).replace(/"expires_at":"[^"]+"/g, (m) => m.slice(0, 26) + '…"');

// ---- The model's run context: the run's start (for expiries) beside the real world.

export type RunReal = Real & { t0: number };

/** Who a new key's owner is for this actor (and `workspace` for A or M when asked). */
function targetOwner(real: Real, actor: Actor, workspace: boolean): string {
  if (actor.t === "key") return actor.key.owner;
  if (actor.t === "rpc") return ownerOf(real, actor.owner);
  return workspace && (actor.who === "A" || actor.who === "M") ? ownerOf(real, "W") : ownerOf(real, actor.who);
}

function authOf(real: Real, actor: Actor): string {
  return actor.t === "key" ? actor.key.secret : actor.t === "person" ? real.jwts[actor.who] : "";
}

function newHeld(model: Model, fields: Omit<Held, "label" | "minter" | "minterKey">, actor: Actor): Held {
  const held: Held = {
    ...fields,
    label: `k${model.keys.length + 1}`,
    minter: actor.name,
    minterKey: actor.t === "key" ? actor.key : null,
  };
  model.keys.push(held);
  return held;
}

abstract class Step implements Cmd {
  protected done = "";
  constructor(readonly actorSpec: ActorSpec) {}

  check(model: Readonly<Model>): boolean {
    return this.actorSpec.t !== "key" || model.keys.length > 0;
  }

  protected abstract drawn(): string;

  /** Sends the request and updates the model; returns what the invariants need beyond the rows. */
  protected abstract act(
    model: Model,
    real: RunReal,
    actor: Actor,
    before: Map<string, Row>,
  ): Promise<Omit<StepFacts, "actor" | "before" | "after" | "rootsBefore" | "rootsAfter">>;

  async run(model: Model, real: RunReal): Promise<void> {
    const [before, rootsBefore] = [await readRows(real), await readRoots(real)];
    const actor = resolveActor(this.actorSpec, model, before);
    this.done = `${actor.name} ${this.drawn()}`;
    let facts: Awaited<ReturnType<Step["act"]>>;
    try {
      facts = await this.act(model, real, actor, before);
    } finally {
      model.log.push(this.done);
    }
    const [after, rootsAfter] = [await readRows(real), await readRoots(real)];
    await checkInvariants(model, real, { ...facts, actor, before, after, rootsBefore, rootsAfter });
  }

  /** Checks an answer's status and secrecy, and notes it in the step's description. */
  protected answered(model: Model, answer: Answer, minted?: string): void {
    checkStatus(answer);
    checkSecrecy(answer, model, minted);
    this.done += ` → ${answer.status}`;
  }

  toString(): string {
    return this.done || `${specText(this.actorSpec)} ${this.drawn()}`;
  }
}

abstract class TargetStep extends Step {
  /** The key a chain step aims at (its own), instead of a drawn pick. */
  private fixed: Held | null = null;
  constructor(
    actorSpec: ActorSpec,
    readonly targetPick: number,
  ) {
    super(actorSpec);
  }
  override check(model: Readonly<Model>): boolean {
    return model.keys.length > 0;
  }
  /** Aims this step at `key` (a chain step's); returns the step. */
  at(key: Held): this {
    this.fixed = key;
    return this;
  }
  protected target(model: Model, rows: ReadonlyMap<string, Row>): Held {
    return this.fixed ?? pickKey(model, this.targetPick, rows);
  }
}

// ---- Create

export class Create extends Step {
  constructor(
    actorSpec: ActorSpec,
    readonly workspace: boolean,
    readonly powers: PowersSpec,
    readonly limits: (typeof LIMITS)[number] | "none",
  ) {
    super(actorSpec);
  }
  protected drawn(): string {
    return `create ${show({ ...(this.workspace ? { owner: "workspace" } : {}), ...this.powers, limits: this.limits })}`;
  }
  protected async act(model: Model, real: RunReal, actor: Actor) {
    const body = {
      name: "model key",
      ...(actor.t === "person" && this.workspace ? { owner: "workspace" } : {}),
      ...powersBody(real, this.powers),
      ...limitsBody(this.limits),
    };
    const answer =
      actor.t === "rpc"
        ? await rpc(real, "create", (s) => s.create(rpcOwner(real, actor.owner), body as never))
        : await http(real, "POST", "/v1/keys", authOf(real, actor), body);
    const created = answer.body as { id?: string; key?: string } | null;
    const ok = answer.status === 201 || (actor.t === "rpc" && answer.status === 200);
    this.answered(model, answer, ok ? created?.key : undefined);
    if (!ok || !created?.id || !created.key) return { minted: [] };
    const held = newHeld(
      model,
      {
        id: created.id,
        secret: created.key,
        hash: await hashOf(created.key),
        owner: targetOwner(real, actor, this.workspace),
        via: "create",
      },
      actor,
    );
    this.done += ` ${held.label}`;
    return { minted: [held] };
  }
}

// ---- Import

interface ItemSpec {
  readonly pick: number;
  /** Import the hash of a key minted in the run instead of a legacy token. */
  readonly keyHash: boolean;
  readonly powers: PowersSpec;
  /** The imported key's expiry, in hours from the run's start (may be in the past). */
  readonly expires?: number | null;
}

export class Import extends Step {
  constructor(
    actorSpec: ActorSpec,
    readonly workspace: boolean,
    readonly items: readonly ItemSpec[],
  ) {
    super(actorSpec);
  }
  protected drawn(): string {
    return `import ${this.items.length} item(s)${this.workspace ? " for the workspace" : ""}`;
  }

  /**
   * A trusted importer (RPC, or a workspace admin importing for the workspace) imports only the
   * tokens its owner issued: claiming another owner's is what an untrusted caller (a person for
   * themself, a member, a key) may try, and what the invariants say must not work.
   */
  private eligible(model: Model, actor: Actor): readonly Token[] {
    if (actor.t === "rpc") return model.tokens.filter((t) => t.trueOwner === actor.owner);
    if (actor.t === "person" && actor.who === "A" && this.workspace)
      return model.tokens.filter((t) => t.trueOwner === "W");
    return model.tokens;
  }

  protected async act(model: Model, real: RunReal, actor: Actor) {
    const tokens = this.eligible(model, actor);
    const items: { body: Record<string, unknown>; secret: string | null; what: string }[] = [];
    for (const item of this.items) {
      const common = {
        name: "imported",
        ...(actor.t === "person" && this.workspace ? { owner: "workspace" } : {}),
        // An import item has no allowed_ips (a key importing gives its own to the items).
        ...powersBody(real, { ...item.powers, expires: undefined, ips: undefined }),
        ...(item.expires !== undefined ? { expires_at: expiresAt(real, item.expires) } : {}),
      };
      if (item.keyHash) {
        const key = model.keys[item.pick % Math.max(model.keys.length, 1)];
        if (!key) continue;
        items.push({
          body: { hash: key.hash, format: "opaque", ...common },
          secret: null,
          what: `hash of ${key.label}`,
        });
      } else {
        const t = tokens[item.pick % Math.max(tokens.length, 1)];
        if (!t) continue;
        items.push({
          body: { hash: t.hash, format: t.format, ...common },
          secret: t.sends,
          what: `${t.label} of ${t.trueOwner}`,
        });
      }
    }
    this.done += ` [${items.map((i) => `${i.what} ${show({ ...i.body, hash: undefined, name: undefined, format: undefined })}`).join(", ")}]`;
    if (items.length === 0) return { minted: [] };
    const body = { keys: items.map((i) => i.body) };
    const answer =
      actor.t === "rpc"
        ? await rpc(real, "import", (s) => s.import(rpcOwner(real, actor.owner), body as never))
        : await http(real, "POST", "/v1/keys/import", authOf(real, actor), body);
    this.answered(model, answer);
    if (answer.status !== 200) return { minted: [] };
    const results = (answer.body as { results: { status: string; id: string | null }[] }).results;
    const minted: Held[] = [];
    for (const [i, result] of results.entries()) {
      const item = items[i]!;
      if (result.status !== "imported" || !result.id || item.secret === null) continue;
      minted.push(
        newHeld(
          model,
          {
            id: result.id,
            secret: item.secret,
            hash: String(item.body.hash),
            owner: targetOwner(real, actor, this.workspace),
            via: "import",
          },
          actor,
        ),
      );
    }
    this.done += ` ${results.map((r) => r.status).join(",")}${minted.length ? ` ${minted.map((k) => k.label).join(",")}` : ""}`;
    return {
      minted,
      imported: {
        owner: targetOwner(real, actor, this.workspace),
        hashes: items.map((i) => String(i.body.hash)),
        results,
      },
    };
  }
}

// ---- Rotate

export class Rotate extends TargetStep {
  constructor(
    actorSpec: ActorSpec,
    targetPick: number,
    readonly grace: number,
  ) {
    super(actorSpec, targetPick);
  }
  protected drawn(): string {
    return `rotate #${this.targetPick} grace=${this.grace}`;
  }
  protected async act(model: Model, real: RunReal, actor: Actor, before: Map<string, Row>) {
    const target = this.target(model, before);
    this.done = this.done.replace(`#${this.targetPick}`, target.label);
    const options = { grace_seconds: this.grace };
    const answer =
      actor.t === "rpc"
        ? await rpc(real, "rotate", (s) => s.rotate(rpcOwner(real, actor.owner), target.id, options))
        : await http(real, "POST", `/v1/keys/${target.id}/rotate`, authOf(real, actor), options);
    const created = answer.body as { id?: string; key?: string } | null;
    const ok = answer.status === 200 || answer.status === 201;
    this.answered(model, answer, ok ? created?.key : undefined);
    if (!ok || !created?.id || !created.key) return { minted: [] };
    const after = (await readRows(real)).get(target.id);
    target.rotation = {
      before:
        target.rotation?.before !== undefined ? target.rotation.before : (before.get(target.id)?.expiresAt ?? null),
      set: after?.expiresAt ?? null,
    };
    const held = newHeld(
      model,
      { id: created.id, secret: created.key, hash: await hashOf(created.key), owner: target.owner, via: "rotate" },
      actor,
    );
    this.done += ` ${held.label}`;
    return { minted: [held] };
  }
}

// ---- PATCH

interface PatchSpec {
  powers: PowersSpec;
  limits?: (typeof LIMITS)[number] | "clear";
  enabled?: boolean;
}

export class Patch extends TargetStep {
  constructor(
    actorSpec: ActorSpec,
    targetPick: number,
    readonly patch: PatchSpec,
  ) {
    super(actorSpec, targetPick);
  }
  protected drawn(): string {
    return `patch #${this.targetPick} ${show({ ...this.patch.powers, limits: this.patch.limits, enabled: this.patch.enabled })}`;
  }
  protected async act(model: Model, real: RunReal, actor: Actor, before: Map<string, Row>) {
    const target = this.target(model, before);
    this.done = this.done.replace(`#${this.targetPick}`, target.label);
    const body = {
      ...powersBody(real, this.patch.powers),
      ...limitsBody(this.patch.limits),
      ...(this.patch.enabled !== undefined ? { enabled: this.patch.enabled } : {}),
    };
    const answer =
      actor.t === "rpc"
        ? await rpc(real, "update", (s) => s.update(rpcOwner(real, actor.owner), target.id, body as never))
        : await http(real, "PATCH", `/v1/keys/${target.id}`, authOf(real, actor), body);
    this.answered(model, answer);
    return { minted: [] };
  }
}

// ---- Credits

export class Credits extends TargetStep {
  constructor(
    actorSpec: ActorSpec,
    targetPick: number,
    readonly op: "set" | "increment" | "decrement",
    readonly amount: number,
  ) {
    super(actorSpec, targetPick);
  }
  protected drawn(): string {
    return `credits #${this.targetPick} ${this.op} ${this.amount}`;
  }
  protected async act(model: Model, real: RunReal, actor: Actor, before: Map<string, Row>) {
    const target = this.target(model, before);
    this.done = this.done.replace(`#${this.targetPick}`, target.label);
    const body = { op: this.op, amount: this.amount };
    const answer =
      actor.t === "rpc"
        ? await rpc(real, "credits", (s) => s.credits(rpcOwner(real, actor.owner), target.id, body))
        : await http(real, "POST", `/v1/keys/${target.id}/credits`, authOf(real, actor), body);
    this.answered(model, answer);
    return { minted: [] };
  }
}

// ---- Revoke

export class Revoke extends TargetStep {
  constructor(
    actorSpec: ActorSpec,
    targetPick: number,
    readonly cascade: boolean,
  ) {
    super(actorSpec, targetPick);
  }
  protected drawn(): string {
    return `revoke #${this.targetPick}${this.cascade ? " cascade" : ""}`;
  }
  protected async act(model: Model, real: RunReal, actor: Actor, before: Map<string, Row>) {
    const target = this.target(model, before);
    this.done = this.done.replace(`#${this.targetPick}`, target.label);
    const answer =
      actor.t === "rpc"
        ? await rpc(real, "revoke", (s) => s.revoke(rpcOwner(real, actor.owner), target.id, { cascade: this.cascade }))
        : await http(
            real,
            "DELETE",
            `/v1/keys/${target.id}${this.cascade ? "?cascade=true" : ""}`,
            authOf(real, actor),
          );
    this.answered(model, answer);
    if (answer.status !== 204 || !this.cascade) return { minted: [] };
    model.cascaded.push(target);
    return { minted: [], cascaded: target };
  }
}

// ---- Reads (for secrecy: every answer is scanned)

export class Read extends TargetStep {
  constructor(
    actorSpec: ActorSpec,
    targetPick: number,
    readonly what: "list" | "get" | "events" | "all-events" | "verify",
  ) {
    super(actorSpec, targetPick);
  }
  override check(model: Readonly<Model>): boolean {
    return model.keys.length > 0;
  }
  protected drawn(): string {
    return `read ${this.what} #${this.targetPick}`;
  }
  protected async act(model: Model, real: RunReal, actor: Actor, before: Map<string, Row>) {
    const target = this.target(model, before);
    this.done = this.done.replace(`#${this.targetPick}`, target.label);
    let answer: Answer;
    if (actor.t === "rpc") {
      const owner = rpcOwner(real, actor.owner);
      answer = await rpc(real, this.what, (s) => {
        switch (this.what) {
          case "list":
            return s.list(owner, { include_revoked: true, limit: 100 });
          case "get":
            return s.get(owner, target.id);
          case "events":
            return s.keyEvents(owner, target.id, { limit: 100 });
          case "all-events":
            return s.listEvents(owner, { limit: 100 });
          case "verify":
            return s.verify(target.secret, { ip: "10.1.2.3", cost: 0 });
        }
      });
    } else {
      const auth = authOf(real, actor);
      answer =
        this.what === "list"
          ? await http(real, "GET", "/v1/keys?include_revoked=true&limit=100", auth)
          : this.what === "get"
            ? await http(real, "GET", `/v1/keys/${target.id}`, auth)
            : this.what === "events"
              ? await http(real, "GET", `/v1/keys/${target.id}/events?limit=100`, auth)
              : this.what === "all-events"
                ? await http(real, "GET", "/v1/events?limit=100", auth)
                : await http(real, "POST", "/v1/verify", undefined, { key: target.secret, ip: "10.1.2.3", cost: 0 });
    }
    this.answered(model, answer);
    return { minted: [] };
  }
}

// ---- A chain: keys of one owner that meet through a chain (shared counters, a lineage)

/** The powers a narrow manager holds: it manages keys, and little else. */
const MANAGERS = [
  ["keys:write", "metrics:read"],
  ["keys:write", "keys:read", "metrics:read"],
  ["keys:*", "metrics:read"],
  ["keys:write"],
] as const;

export interface ChainSpec {
  readonly owner: ActorSpec;
  readonly workspace: boolean;
  /** k1, minted by the owner (with usage limits or not). */
  readonly root: readonly string[];
  readonly rootLimits: "none" | "credits" | "both";
  /** k2, minted by k1: it shares k1's counters when k1 has limits. */
  readonly child: readonly string[];
  /**
   * k2 mints k2b, the owner revokes k2 and widens k2b to every scope (freed from its minter): what a
   * cascade of k1 then reaches. (For the lineage act: the rotation's grace.)
   */
  readonly widen: boolean;
  /** k3, minted by the owner: a narrow manager of the same owner. */
  readonly manager: readonly string[];
  /**
   * What k3 then does, and to which of k1, k2 (`limits`: gives credits, or clears the limits). Limits
   * for k1 are given by the owner instead: limits given to a key after it minted keys without them.
   */
  readonly act: "credits" | "limits" | "cascade" | "lineage";
  readonly limits: "credits" | "clear";
  readonly target: 0 | 1;
}

/**
 * One step that builds what random picks seldom do: a root key k1, a child k2 it mints (sharing its
 * counters when k1 has limits), perhaps widened by the owner, and a narrow manager k3 of the same owner,
 * which then changes credits or limits of k1's chain, or cascades k1's lineage (or the owner gives k1
 * limits after k2 was minted without them: refused while k2 lives). Chain-wide powers say it
 * may do so only when it may manage every key reached. Each part is a step of its own (logged, checked).
 */
export class Chain implements Cmd {
  private done: string[] = [];
  constructor(readonly spec: ChainSpec) {}

  check(): boolean {
    return true;
  }

  private async mint(model: Model, real: RunReal, step: Step): Promise<Held | null> {
    const count = model.keys.length;
    await this.part(model, real, step);
    return model.keys.length > count ? model.keys[model.keys.length - 1]! : null;
  }

  private async part(model: Model, real: RunReal, step: Step): Promise<void> {
    try {
      await step.run(model, real);
    } finally {
      this.done.push(step.toString());
    }
  }

  /** The owner revokes its oldest live keys until three more fit its quota (a full quota would stop the chain). */
  private async makeRoom(model: Model, real: RunReal): Promise<void> {
    const s = this.spec;
    const owner = targetOwner(real, resolveActor(s.owner, model, new Map()), s.workspace);
    const rows = await readRows(real);
    const now = Date.now();
    const mine = model.keys.filter((k) => k.owner === owner && rows.has(k.id) && live(rows.get(k.id)!, now));
    for (const key of mine.slice(0, Math.max(0, mine.length + 3 - real.quota))) {
      await this.part(model, real, new Revoke(s.owner, 0, false).at(key));
    }
  }

  async run(model: Model, real: RunReal): Promise<void> {
    const s = this.spec;
    this.done = [];
    await this.makeRoom(model, real);
    if (s.act === "lineage") return this.lineage(model, real);
    const k1 = await this.mint(model, real, new Create(s.owner, s.workspace, { scopes: s.root }, s.rootLimits));
    if (!k1) return;
    const k2 = await this.mint(model, real, new Create({ t: "held", key: k1 }, false, { scopes: s.child }, "none"));
    if (!k2) return;
    if (s.widen) {
      // A grandchild k2b, freed by its minter k2's revocation and widened by the owner: still in k1's
      // lineage (a cascade follows revoked keys' lineages), and stronger than k3.
      const k2b = await this.mint(
        model,
        real,
        new Create({ t: "held", key: k2 }, false, { scopes: weakChild(s.manager) }, "none"),
      );
      if (k2b) {
        await this.part(model, real, new Revoke(s.owner, 0, false).at(k2));
        await this.part(model, real, new Patch(s.owner, 0, { powers: { scopes: ["*"] } }).at(k2b));
      }
    }
    const k3 = await this.mint(model, real, new Create(s.owner, s.workspace, { scopes: s.manager }, "none"));
    if (!k3) return;
    const manager: ActorSpec = { t: "held", key: k3 };
    const target = s.target === 0 ? k1 : k2;
    const last =
      s.act === "credits"
        ? new Credits(manager, 0, "set", 0)
        : s.act === "limits"
          ? new Patch(s.target === 0 ? s.owner : manager, 0, { powers: {}, limits: s.limits })
          : new Revoke(manager, 0, true);
    await this.part(model, real, last.at(target));
  }

  /** A manager k1 rotates a sibling k2 (the replacement is k1's to answer for), then the owner cascades k1. */
  private async lineage(model: Model, real: RunReal): Promise<void> {
    const s = this.spec;
    const k1 = await this.mint(model, real, new Create(s.owner, s.workspace, { scopes: s.manager }, "none"));
    if (!k1) return;
    const k2 = await this.mint(model, real, new Create(s.owner, s.workspace, { scopes: s.child }, "none"));
    if (!k2) return;
    const replaced = await this.mint(model, real, new Rotate({ t: "held", key: k1 }, 0, s.widen ? 3600 : 0).at(k2));
    if (!replaced) return;
    await this.part(model, real, new Revoke(s.owner, 0, true).at(k1));
  }

  toString(): string {
    const s = this.spec;
    return this.done.length > 0
      ? `chain [${this.done.join("; ")}]`
      : `chain ${specText(s.owner)} k1 ${show(s.root)} ${s.rootLimits}, k2 ${show(s.child)}${s.widen ? " widened" : ""}, k3 ${show(s.manager)} ${s.act === "limits" ? `limits ${s.limits}` : s.act} k${s.target + 1}`;
  }
}

/** A root stronger than `manager`: every scope, or the manager's and one more. */
const strongerRoots = (manager: readonly string[]): readonly (readonly string[])[] => [
  ["*"],
  [...manager, "models:invoke"],
];
/** A child within `manager` (and so within a root stronger than it): `metrics:read` when the manager covers it. */
const weakChild = (manager: readonly string[]): readonly string[] =>
  manager.includes("metrics:read") ? ["metrics:read"] : manager;

const chainArb: fc.Arbitrary<Cmd> = fc
  .record({
    owner: fc.oneof(
      fc.constantFrom<PersonName>("P", "Q", "A").map((who): ActorSpec => ({ t: "person", who })),
      fc.constantFrom<RpcOwner>("P", "Q", "W").map((owner): ActorSpec => ({ t: "rpc", owner })),
    ),
    workspace: fc.boolean(),
    root: fc.constantFrom<readonly string[]>(["*"], ...SCOPES),
    rootLimits: fc.constantFrom("none" as const, "credits" as const, "credits" as const, "both" as const),
    child: fc.constantFrom<readonly string[]>(["metrics:read"], ["metrics:read"], ...SCOPES),
    widen: fc.constantFrom(true, true, false),
    manager: fc.constantFrom<readonly string[]>(...MANAGERS),
    act: fc.constantFrom("credits" as const, "limits" as const, "cascade" as const, "lineage" as const),
    limits: fc.constantFrom("credits" as const, "clear" as const),
    // Credits and limits reach k1's chain through k2; a cascade reaches k2 through k1.
    target: fc.constantFrom(0 as const, 1 as const, 1 as const),
    // For credits and limits: mostly k1 stronger than k3 and k2 within k3 (the chain a weaker key meets a
    // stronger one through), else k1 and k2 as drawn (k1 often within k3: a change k3 may make).
    stronger: fc.constantFrom<0 | 1 | null>(0, 1, 0, 1, 0, 1, null, null),
  })
  // Only A (an admin of W) creates for the workspace.
  .map((spec) => ({ ...spec, workspace: spec.workspace && spec.owner.t === "person" && spec.owner.who === "A" }))
  .map((spec): Cmd => new Chain(shaped(spec)));

/** A drawn chain made into one that reaches what its act is about. */
function shaped(spec: ChainSpec & { readonly stronger: 0 | 1 | null }): ChainSpec {
  // k3 a peer of k1 (so it may manage k1), and k1's lineage the way to what k3 may not manage.
  if (spec.act === "cascade" || spec.act === "lineage") {
    // A widened cascade: k2 may mint (k2b), as k1 may.
    const child = spec.act === "cascade" && spec.widen ? spec.manager : spec.child;
    return { ...spec, root: spec.manager, child, target: (1 - spec.target) as 0 | 1 };
  }
  // A widened k2 is beyond any manager: the step would stop at the first check.
  const drawn = { ...spec, widen: false };
  const reaching =
    spec.stronger === null
      ? drawn
      : { ...drawn, root: strongerRoots(spec.manager)[spec.stronger]!, child: weakChild(spec.manager) };
  // Limits the owner gives k1 after k2 was minted without them.
  if (spec.act === "limits" && spec.target === 0) return { ...reaching, rootLimits: "none", limits: "credits" };
  // Credits need credits to change.
  if (spec.act === "credits" && spec.stronger !== null && spec.rootLimits === "none") {
    return { ...reaching, rootLimits: "credits" };
  }
  return reaching;
}

// ---- The arbitrary of steps

const targetArb = fc.nat(PICKS - 1);

const createArb = fc
  .tuple(actorArb, fc.boolean(), powersArb, fc.constantFrom("none" as const, "none" as const, ...LIMITS))
  .map(([a, ws, p, l]) => new Create(a, ws, p, l));

/** A sequence's first keys, by people and RPC (so that keys act from the first steps on). */
export const firstKeysArb: fc.Arbitrary<Cmd[]> = fc.array(
  fc
    .tuple(
      fc.oneof(
        fc.constantFrom(...PEOPLE).map((who): ActorSpec => ({ t: "person", who })),
        fc.constantFrom<RpcOwner>("P", "W").map((owner): ActorSpec => ({ t: "rpc", owner })),
      ),
      fc.boolean(),
      powersArb,
      fc.constantFrom("none" as const, "none" as const, ...LIMITS),
    )
    .map(([a, ws, p, l]): Cmd => new Create(a, ws, p, l)),
  { minLength: 1, maxLength: 4 },
);

/**
 * Keys that only read metrics, or also manage keys that do: the narrow keys that meet stronger ones
 * through a chain (a child sharing counters, a cascade tree), drawn more often than the pools alone would.
 */
const narrowCreateArb = fc
  .tuple(
    actorArb,
    fc.constantFrom(["metrics:read"], ["keys:write", "metrics:read"]),
    fc.constantFrom("none" as const, "credits" as const),
  )
  .map(([a, scopes, l]) => new Create(a, false, { scopes }, l));

const creditsArb = fc
  .tuple(actorArb, targetArb, fc.constantFrom("set" as const, "increment" as const, "decrement" as const), fc.nat(5))
  .map(([a, t, op, n]) => new Credits(a, t, op, n));

/**
 * A key importing one legacy token with the powers it would give by default (its own): the import a
 * random item's powers seldom let through, and the one only trusted importers may make.
 */
const keyImportArb = fc
  .tuple(fc.nat(PICKS - 1), fc.nat(20))
  .map(([key, pick]) => new Import({ t: "key", pick: key }, false, [{ pick, keyHash: false, powers: {} }]));

/** fast-check picks a step kind uniformly: creates, credits and revokes appear more than once to be drawn more often. */
export const stepArbs: fc.Arbitrary<Cmd>[] = [
  chainArb,
  chainArb,
  chainArb,
  keyImportArb,
  createArb,
  createArb,
  narrowCreateArb,
  narrowCreateArb,
  creditsArb,
  fc
    .tuple(
      actorArb,
      fc.boolean(),
      fc.array(
        fc.record(
          {
            pick: fc.nat(20),
            keyHash: fc.oneof(
              { weight: 3, arbitrary: fc.constant(false) },
              { weight: 1, arbitrary: fc.constant(true) },
            ),
            powers: powersArb,
            expires: fc.constantFrom(null, -1, 1, 24),
          },
          { requiredKeys: ["pick", "keyHash", "powers"] },
        ),
        { minLength: 1, maxLength: 3 },
      ),
    )
    .map(([a, ws, items]) => new Import(a, ws, items)),
  fc.tuple(actorArb, targetArb, fc.constantFrom(0, 3600)).map(([a, t, g]) => new Rotate(a, t, g)),
  fc
    .tuple(
      actorArb,
      targetArb,
      fc.record(
        {
          powers: powersArb,
          limits: fc.constantFrom(...LIMITS, "clear" as const),
          enabled: fc.boolean(),
        },
        { requiredKeys: ["powers"] },
      ),
    )
    .map(([a, t, p]) => new Patch(a, t, p)),
  creditsArb,
  fc.tuple(actorArb, targetArb, fc.boolean()).map(([a, t, c]) => new Revoke(a, t, c)),
  fc.tuple(actorArb, targetArb, fc.constant(true)).map(([a, t, c]) => new Revoke(a, t, c)),
  fc
    .tuple(
      actorArb,
      targetArb,
      fc.constantFrom("list" as const, "get" as const, "events" as const, "all-events" as const, "verify" as const),
    )
    .map(([a, t, w]) => new Read(a, t, w)),
];

export type { OwnerName, PersonName };
