/**
 * The model test's root key steps (docs/backends.md): the operator (or a person or a key trying) makes
 * root keys with random owner patterns and scopes; root keys create, list, read, change, revoke and import
 * keys for owners inside and outside their patterns (one import may name several owners, as a migration's
 * CSV does); the operator revokes root keys, and the clock expires them. Each step then checks every
 * invariant (invariants.ts, root-invariants.ts). `toString` says what the step did.
 */
import fc from "fast-check";
import type { RunReal } from "./commands";
import { checkInvariants, checkSecrecy, checkStatus, type StepFacts } from "./invariants";
import type { RootFacts } from "./root-invariants";
import {
  type Answer,
  type Held,
  type Model,
  type OwnerName,
  PICKS,
  type RootActor,
  type RootHeld,
  type Row,
  hashOf,
  http,
  ownerOf,
  patternsCover,
  pickKey,
  readRoots,
  readRows,
} from "./world";

type Cmd = fc.AsyncCommand<Model, RunReal>;

/** Owner patterns, P, Q and W standing for the run's owners; undefined: the default (every owner). */
const PATTERNS: readonly (readonly string[] | undefined)[] = [
  undefined,
  ["user:*"],
  ["workspace:*"],
  ["user:P"],
  ["workspace:W"],
  ["user:Q", "workspace:W"],
  ["user:*", "workspace:W"],
];
const DEFAULT_PATTERNS = ["user:*", "workspace:*"];
const ROOT_SCOPES: readonly (readonly string[] | undefined)[] = [
  undefined,
  ["keys:read"],
  ["keys:write"],
  ["keys:read", "keys:write"],
];
const DEFAULT_SCOPES = ["keys:read", "keys:write"];
const HOUR = 3_600_000;

function resolvePattern(real: RunReal, pattern: string): string {
  if (pattern.endsWith(":*")) return pattern;
  return ownerOf(real, pattern.slice(pattern.indexOf(":") + 1) as OwnerName);
}

interface Acted {
  readonly actor: RootActor;
  readonly root?: RootFacts;
  readonly minted?: readonly Held[];
  readonly imported?: StepFacts["imported"];
}

abstract class RootStep implements Cmd {
  protected done = "";

  check(model: Readonly<Model>): boolean {
    return model.roots.length > 0;
  }

  protected abstract drawn(): string;
  protected abstract act(model: Model, real: RunReal, before: Map<string, Row>): Promise<Acted>;

  async run(model: Model, real: RunReal): Promise<void> {
    const [before, rootsBefore] = [await readRows(real), await readRoots(real)];
    this.done = this.drawn();
    let acted: Acted;
    try {
      acted = await this.act(model, real, before);
    } finally {
      model.log.push(this.done);
    }
    const [after, rootsAfter] = [await readRows(real), await readRoots(real)];
    await checkInvariants(model, real, {
      actor: acted.actor,
      before,
      after,
      rootsBefore,
      rootsAfter,
      minted: acted.minted ?? [],
      ...(acted.root ? { root: acted.root } : {}),
      ...(acted.imported ? { imported: acted.imported } : {}),
    });
  }

  protected answered(model: Model, answer: Answer, minted?: string): void {
    checkStatus(answer);
    checkSecrecy(answer, model, minted);
    this.done += ` → ${answer.status}`;
  }

  protected rootOf(model: Model, pick: number): RootHeld {
    return model.roots[pick % model.roots.length]!;
  }

  toString(): string {
    return this.done || this.drawn();
  }
}

// ---- The operator's steps

export class CreateRoot extends RootStep {
  constructor(
    readonly by: "operator" | "person" | "key",
    readonly patterns: number,
    readonly scopes: number,
    readonly expires: number | null,
    readonly keyPick: number,
  ) {
    super();
  }
  override check(): boolean {
    return true;
  }
  protected drawn(): string {
    const owners = PATTERNS[this.patterns];
    const scopes = ROOT_SCOPES[this.scopes];
    return `${this.by} makes a root key ${owners ? owners.join(" ") : "(every owner)"}; ${scopes ? scopes.join(" ") : "(both scopes)"}${this.expires ? ` expiring in ${this.expires}h` : ""}`;
  }
  protected async act(model: Model, real: RunReal, before: Map<string, Row>): Promise<Acted> {
    const owners = PATTERNS[this.patterns]?.map((p) => resolvePattern(real, p));
    const scopes = ROOT_SCOPES[this.scopes];
    const body = {
      name: "model root",
      ...(owners ? { owners } : {}),
      ...(scopes ? { scopes } : {}),
      ...(this.expires ? { expires_at: new Date(real.t0 + this.expires * HOUR).toISOString() } : {}),
    };
    const key = this.by === "key" && model.keys.length > 0 ? pickKey(model, this.keyPick, before) : null;
    const auth = this.by === "operator" ? real.operator.jwt : key ? key.secret : real.jwts.P;
    const actor: RootActor =
      this.by === "operator"
        ? { t: "operator", name: "operator" }
        : { t: "operator", name: key ? `key:${key.label}` : "person:P" };
    const answer = await http(real, "POST", "/v1/root-keys", auth, body);
    const created = answer.body as { id?: string; key?: string } | null;
    this.answered(model, answer, answer.status === 201 ? created?.key : undefined);
    const by = this.by === "operator" ? ("operator" as const) : ("other" as const);
    if (answer.status !== 201 || !created?.id || !created.key || by !== "operator") {
      return { actor, root: { kind: "create", by, status: answer.status, ...(created?.id ? { id: created.id } : {}) } };
    }
    const root: RootHeld = {
      label: `r${model.roots.length + 1}`,
      id: created.id,
      secret: created.key,
      hash: await hashOf(created.key),
      owners: owners ?? DEFAULT_PATTERNS,
      scopes: scopes ?? DEFAULT_SCOPES,
    };
    model.roots.push(root);
    this.done += ` ${root.label}`;
    return { actor, root: { kind: "create", by, status: answer.status, id: root.id } };
  }
}

export class RevokeRoot extends RootStep {
  constructor(
    readonly pick: number,
    readonly byOperator: boolean,
  ) {
    super();
  }
  protected drawn(): string {
    return `${this.byOperator ? "operator" : "person:P"} revokes root #${this.pick}`;
  }
  protected async act(model: Model, real: RunReal): Promise<Acted> {
    const root = this.rootOf(model, this.pick);
    this.done = this.done.replace(`#${this.pick}`, root.label);
    const auth = this.byOperator ? real.operator.jwt : real.jwts.P;
    this.answered(model, await http(real, "DELETE", `/v1/root-keys/${root.id}`, auth));
    return {
      actor: { t: "operator", name: this.byOperator ? "operator" : "person:P" },
      root: { kind: "revoke", root, by: this.byOperator ? "operator" : "other" },
    };
  }
}

/** Time passes a root key's expiry (its `expires_at` set just past, as the clock would reach it). */
export class ExpireRoot extends RootStep {
  constructor(readonly pick: number) {
    super();
  }
  protected drawn(): string {
    return `root #${this.pick} expires`;
  }
  protected async act(model: Model, real: RunReal): Promise<Acted> {
    const root = this.rootOf(model, this.pick);
    this.done = this.done.replace(`#${this.pick}`, root.label);
    const now = Date.now();
    await real.env.DB.prepare(
      "UPDATE root_keys SET expires_at = ? WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)",
    )
      .bind(now - 1000, root.id, now)
      .run();
    return { actor: { t: "clock", name: "clock" }, root: { kind: "expire", root, by: "clock" } };
  }
}

// ---- A root key's steps

type RootOp = "create" | "list" | "events" | "get" | "patch" | "revoke" | "import";

export class RootAct extends RootStep {
  constructor(
    readonly pick: number,
    readonly op: RootOp,
    readonly owner: OwnerName,
    /** The request leaves the owner's type out (a root key must name it: 422). */
    readonly omitType: boolean,
    readonly targetPick: number,
    /** An import's items, one per owner named (tokens each owner issued). */
    readonly importFor: readonly OwnerName[],
    readonly tokenPick: number,
    /** Aim at owners the root key covers (most steps), or at any owner. */
    readonly inside: boolean,
  ) {
    super();
  }
  protected drawn(): string {
    const what =
      this.op === "import"
        ? `import for ${this.importFor.join(",")}`
        : ["get", "patch", "revoke"].includes(this.op)
          ? `${this.op} #${this.targetPick}`
          : `${this.op} for ${this.owner}`;
    return `root #${this.pick} ${what}${this.omitType ? " (no owner type)" : ""}${this.inside ? "" : " (any owner)"}`;
  }

  /** The owner `who` stands for: as drawn, or (inside) one the root key covers, picked by it. */
  private aim(real: RunReal, root: RootHeld, who: OwnerName): OwnerName {
    if (!this.inside) return who;
    const all: OwnerName[] = ["P", "Q", "A", "M", "W"];
    const covered = all.filter((o) => patternsCover(root.owners, ownerOf(real, o)));
    return covered.length === 0 ? who : covered[all.indexOf(who) % covered.length]!;
  }

  /** The owner's request fields and the owner it names (`<type>:<id>`, or `?:<id>` without a type). */
  private named(real: RunReal, who: OwnerName, typeField: "owner" | "owner_type") {
    const owner = ownerOf(real, who);
    const [type, id] = [owner.slice(0, owner.indexOf(":")), owner.slice(owner.indexOf(":") + 1)];
    const fields: Record<string, string> = this.omitType ? { owner_id: id } : { [typeField]: type, owner_id: id };
    return { fields, named: this.omitType ? `?:${id}` : owner };
  }

  protected async act(model: Model, real: RunReal, before: Map<string, Row>): Promise<Acted> {
    const root = this.rootOf(model, this.pick);
    this.done = this.done.replace(`#${this.pick}`, root.label);
    const actor: RootActor = { t: "root", root, name: `root:${root.label}` };
    const facts = (status: number, rest: Partial<Extract<RootFacts, { kind: "act" }>> = {}): RootFacts => ({
      kind: "act",
      root,
      op: this.op,
      status,
      named: [],
      made: [],
      ...rest,
    });
    const make = (id: string, secret: string, hash: string, owner: string, via: Held["via"]): Held => {
      const held: Held = {
        label: `k${model.keys.length + 1}`,
        id,
        secret,
        hash,
        owner,
        minter: `root:${root.label}`,
        minterKey: null,
        minterRoot: root,
        via,
      };
      model.keys.push(held);
      return held;
    };

    if (this.op === "create" || this.op === "list" || this.op === "events") {
      const { fields, named } = this.named(
        real,
        this.aim(real, root, this.owner),
        this.op === "create" ? "owner" : "owner_type",
      );
      if (this.op === "create") {
        const answer = await http(real, "POST", "/v1/keys", root.secret, {
          name: "root-made",
          scopes: ["metrics:read"],
          ...fields,
        });
        const created = answer.body as { id?: string; key?: string } | null;
        this.answered(model, answer, answer.status === 201 ? created?.key : undefined);
        if (answer.status !== 201 || !created?.id || !created.key)
          return { actor, root: facts(answer.status, { named: [named] }) };
        const key = make(created.id, created.key, await hashOf(created.key), named, "create");
        this.done += ` ${key.label}`;
        return { actor, minted: [key], root: facts(answer.status, { named: [named], made: [{ key, owner: named }] }) };
      }
      const query = new URLSearchParams({
        ...fields,
        limit: "100",
        ...(this.op === "list" ? { include_revoked: "true" } : {}),
      });
      const answer = await http(real, "GET", `/v1/${this.op === "list" ? "keys" : "events"}?${query}`, root.secret);
      this.answered(model, answer);
      const data = (answer.body as { data?: { owner_type?: string; owner_id?: string }[] } | null)?.data ?? [];
      const listed = data.filter((k) => k.owner_type && k.owner_id).map((k) => `${k.owner_type}:${k.owner_id}`);
      return { actor, root: facts(answer.status, { named: [named], listed }) };
    }

    if (this.op === "import") {
      const items: { body: Record<string, unknown>; secret: string; owner: string }[] = [];
      for (const drawn of this.importFor) {
        const who = this.aim(real, root, drawn);
        const tokens = model.tokens.filter((t) => t.trueOwner === who);
        const t = tokens[this.tokenPick % Math.max(tokens.length, 1)];
        if (!t) continue;
        const { fields, named } = this.named(real, who, "owner");
        items.push({
          body: { hash: t.hash, format: t.format, name: "root-imported", ...fields },
          secret: t.sends,
          owner: named,
        });
      }
      this.done += ` [${items.map((i) => i.owner.replace(/:.*/, "")).join(",")}]`;
      if (items.length === 0) return { actor, root: facts(0) };
      const answer = await http(real, "POST", "/v1/keys/import", root.secret, { keys: items.map((i) => i.body) });
      this.answered(model, answer);
      const named = items.map((i) => i.owner);
      if (answer.status !== 200) return { actor, root: facts(answer.status, { named }) };
      const results = (answer.body as { results: { status: string; id: string | null }[] }).results;
      const made: { key: Held; owner: string }[] = [];
      for (const [i, result] of results.entries()) {
        const item = items[i]!;
        if (result.status !== "imported" || !result.id) continue;
        made.push({
          key: make(result.id, item.secret, String(item.body.hash), item.owner, "import"),
          owner: item.owner,
        });
      }
      this.done += ` ${results.map((r) => r.status).join(",")}`;
      return {
        actor,
        minted: made.map((m) => m.key),
        root: facts(answer.status, { named, made }),
        imported: { owner: named[0]!, hashes: items.map((i) => String(i.body.hash)), results },
      };
    }

    // By id: get, patch, revoke.
    if (model.keys.length === 0) return { actor, root: facts(0) };
    const mine = model.keys.filter((k) => patternsCover(root.owners, before.get(k.id)?.owner ?? k.owner));
    const target =
      this.inside && mine.length > 0 ? mine[this.targetPick % mine.length]! : pickKey(model, this.targetPick, before);
    this.done = this.done.replace(`#${this.targetPick}`, target.label);
    const path = `/v1/keys/${target.id}`;
    const answer =
      this.op === "get"
        ? await http(real, "GET", path, root.secret)
        : this.op === "patch"
          ? await http(real, "PATCH", path, root.secret, { enabled: this.targetPick % 2 === 0 })
          : await http(real, "DELETE", path, root.secret);
    this.answered(model, answer);
    const owner = before.get(target.id)?.owner ?? target.owner;
    return { actor, root: facts(answer.status, { target: { ...target, owner } }) };
  }
}

// ---- The arbitraries

const rootPick = fc.nat(9);

const createRootArb: fc.Arbitrary<Cmd> = fc
  .tuple(
    fc.constantFrom("operator" as const, "operator" as const, "operator" as const, "person" as const, "key" as const),
    fc.nat(PATTERNS.length - 1),
    fc.nat(ROOT_SCOPES.length - 1),
    fc.constantFrom(null, null, 24),
    fc.nat(PICKS - 1),
  )
  .map(([by, patterns, scopes, expires, key]) => new CreateRoot(by, patterns, scopes, expires, key));

/** A root key made by the operator at the start of a run, so root keys act from the first steps on. */
export const firstRootArb: fc.Arbitrary<Cmd | null> = fc.option(
  fc
    .tuple(fc.nat(PATTERNS.length - 1), fc.nat(ROOT_SCOPES.length - 1))
    .map(([patterns, scopes]) => new CreateRoot("operator", patterns, scopes, null, 0)),
  { freq: 4 },
);

const rootActArb: fc.Arbitrary<Cmd> = fc
  .tuple(
    rootPick,
    fc.constantFrom<RootOp>("create", "create", "list", "events", "get", "patch", "revoke", "import", "import"),
    fc.constantFrom<OwnerName>("P", "Q", "A", "M", "W"),
    fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    fc.nat(PICKS - 1),
    fc.array(fc.constantFrom<OwnerName>("P", "Q", "A", "W"), { minLength: 1, maxLength: 3 }),
    fc.nat(20),
    fc.constantFrom(true, true, true, false),
  )
  .map(
    ([pick, op, owner, omitType, target, importFor, token, inside]) =>
      new RootAct(pick, op, owner, omitType, target, importFor, token, inside),
  );

/** A root key's end: the operator revokes it (or a person tries), or its expiry passes. */
const endRootArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.tuple(rootPick, fc.constantFrom(true, true, true, false)).map(([pick, op]): Cmd => new RevokeRoot(pick, op)),
  rootPick.map((pick): Cmd => new ExpireRoot(pick)),
);

/** fast-check picks a step kind uniformly: a root key's acts are listed five times to be drawn more often. */
export const rootStepArbs: fc.Arbitrary<Cmd>[] = [
  createRootArb,
  rootActArb,
  rootActArb,
  rootActArb,
  rootActArb,
  rootActArb,
  endRootArb,
];
