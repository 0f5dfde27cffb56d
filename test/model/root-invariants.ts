/**
 * The model test's invariants about root keys (docs/backends.md), checked after every step with the
 * others (invariants.ts), each reading the truth from D1 (and /v1/verify):
 *
 * (h) never a product key: /v1/verify answers a root key NOT_FOUND (never VALID; never MALFORMED, which
 *     would tell its holder what it is), and no key row holds its hash;
 * (i) reach: a root key's step changed, created or read only keys of owners its patterns cover, wrote
 *     only with keys:write and read only with keys:read;
 * (j) the keys a root key made are their owners': stored for the owner the request named, created by
 *     `root:<id>` with no parent (outside any lineage); its revocation or expiry changes none of them,
 *     and each live one still verifies;
 * (k) a revoked or expired root key is refused at once (401, nothing changed); only the operator makes
 *     a root key (a person or a key trying changes nothing) or revokes one, and only the clock expires it.
 */
import {
  CLIENT_IP,
  type Held,
  type Model,
  type Real,
  type RootHeld,
  type RootRow,
  type Row,
  http,
  live,
  patternsCover,
  rootLive,
} from "./world";
import { InvariantError, type StepFacts, checkStatus } from "./invariants";

/** What a root key's step did, for (i)-(k). */
export type RootFacts =
  | {
      readonly kind: "act";
      readonly root: RootHeld;
      readonly op: string;
      readonly status: number;
      /** The owners the request named (`<type>:<id>`; a type left out: `?:<id>`), or the key it named. */
      readonly named: readonly string[];
      readonly target?: Held;
      /** The owners of the keys a 200 list showed. */
      readonly listed?: readonly string[];
      /** The keys the step made, with the owner each was asked for. */
      readonly made: readonly { readonly key: Held; readonly owner: string }[];
    }
  | { readonly kind: "create"; readonly by: "operator" | "other"; readonly status: number; readonly id?: string }
  | { readonly kind: "revoke" | "expire"; readonly root: RootHeld; readonly by: "operator" | "other" | "clock" };

async function verifyCode(real: Real, key: string): Promise<string | undefined> {
  const answer = await http(real, "POST", "/v1/verify", undefined, { key, ip: CLIENT_IP, cost: 0 });
  checkStatus(answer);
  return (answer.body as { code?: string } | null)?.code;
}

export async function checkRootInvariants(
  model: Model,
  real: Real,
  facts: StepFacts,
  on: (letter: string) => boolean,
): Promise<void> {
  const { before, after, rootsBefore, rootsAfter, root } = facts;
  const now = Date.now();

  // (h) never a product key.
  if (on("h")) {
    for (const r of model.roots) {
      const code = await verifyCode(real, r.secret);
      if (code !== "NOT_FOUND") {
        throw new InvariantError("h (root never a product key)", `/v1/verify answered ${code} for root key ${r.label}`);
      }
      for (const row of after.values()) {
        if (row.hash === r.hash)
          throw new InvariantError("h (root never a product key)", `a key row holds ${r.label}'s hash`);
      }
    }
  }

  // (k) root keys change only as the operator (or the clock) changes them.
  if (on("k")) checkRootRows(facts, rootsBefore, rootsAfter);

  if (root?.kind === "act") {
    const row = rootsBefore.get(root.root.id);
    const alive = rootLive(row, now);
    const changed = changedRows(before, after);
    // (k) a dead root key is refused at once, and changes nothing.
    if (!alive && root.status !== 0 && on("k")) {
      if (root.status !== 401 || changed.length > 0) {
        throw new InvariantError(
          "k (dead root refused)",
          `${root.root.label} (${row?.revokedAt !== null ? "revoked" : "expired"}) ${root.op} answered ${root.status} and changed ${changed.length} key(s)`,
        );
      }
    }
    // (i) reach: writes only to covered owners with keys:write; reads only of covered owners with keys:read.
    if (on("i")) {
      for (const { id, owner } of changed) {
        const why: string[] = [];
        if (!alive) why.push("it is not live");
        if (!root.root.scopes.includes("keys:write")) why.push("it lacks keys:write");
        if (!patternsCover(root.root.owners, owner))
          why.push(`owner ${owner} is outside ${root.root.owners.join(" ")}`);
        if (why.length > 0) {
          throw new InvariantError(
            "i (root reach)",
            `${root.root.label} ${root.op} changed ${labelOf(model, id)}: ${why.join("; ")}`,
          );
        }
      }
      const reads = ["list", "events", "get"].includes(root.op) && root.status === 200;
      if (reads) {
        const owners = root.target ? [root.target.owner] : [...root.named, ...(root.listed ?? [])];
        for (const owner of owners) {
          if (!root.root.scopes.includes("keys:read") || !patternsCover(root.root.owners, owner)) {
            throw new InvariantError(
              "i (root reach)",
              `${root.root.label} (${root.root.owners.join(" ")}; ${root.root.scopes.join(" ")}) read the keys of ${owner} (${root.op})`,
            );
          }
        }
      }
    }
    // (j) what it made is the named owner's, outside any lineage.
    if (on("j")) {
      for (const { key, owner } of root.made) {
        const made = after.get(key.id);
        if (!made || made.owner !== owner || made.createdBy !== `root:${root.root.id}` || made.parentId !== null) {
          throw new InvariantError(
            "j (root-made keys are their owners')",
            `${key.label}, made by ${root.root.label} for ${owner}, is stored as ${made ? `${made.owner}, created by ${made.createdBy}, parent ${made.parentId}` : "nothing"}`,
          );
        }
      }
    }
  }

  // (j) a root key's revocation or expiry changes none of its keys; each live one still verifies.
  if ((root?.kind === "revoke" || root?.kind === "expire") && on("j")) {
    const changed = changedRows(before, after);
    if (changed.length > 0) {
      throw new InvariantError(
        "j (root-made keys outlive it)",
        `the ${root.kind} of ${root.root.label} changed ${changed.map((c) => labelOf(model, c.id)).join(", ")}`,
      );
    }
    for (const key of model.keys.filter((k) => k.minterRoot === root.root)) {
      const row = after.get(key.id);
      if (!row || !live(row, now) || row.allowedIps !== null) continue;
      const code = await verifyCode(real, key.secret);
      if (code !== "VALID") {
        throw new InvariantError(
          "j (root-made keys outlive it)",
          `${key.label}, made by ${root.root.label}, answers ${code} after its ${root.kind}`,
        );
      }
    }
  }
}

/** Rows created or changed by the step (owner as `<type>:<id>`). */
function changedRows(before: Map<string, Row>, after: Map<string, Row>): { id: string; owner: string }[] {
  const changed: { id: string; owner: string }[] = [];
  for (const [id, row] of after) if (before.get(id)?.raw !== row.raw) changed.push({ id, owner: row.owner });
  for (const [id, row] of before) if (!after.has(id)) changed.push({ id, owner: row.owner });
  return changed;
}

function labelOf(model: Model, id: string): string {
  return model.keys.find((k) => k.id === id)?.label ?? id;
}

/** (k): a new root key only from the operator's create; a revocation only by the operator; an expiry only by the clock. */
function checkRootRows(facts: StepFacts, before: Map<string, RootRow>, after: Map<string, RootRow>): void {
  const root = facts.root;
  for (const [id, row] of after) {
    const old = before.get(id);
    if (!old) {
      if (root?.kind === "create" && root.by === "operator" && root.id === id) continue;
      throw new InvariantError(
        "k (only the operator makes root keys)",
        `a root key appeared, made by ${row.createdBy} (${facts.actor.name})`,
      );
    }
    if (old.raw === row.raw) continue;
    const revokedNow = old.revokedAt === null && row.revokedAt !== null;
    const byOperator = root?.kind === "revoke" && root.by === "operator" && root.root.id === id;
    const byClock = root?.kind === "expire" && root.root.id === id && old.revokedAt === row.revokedAt;
    if ((revokedNow && byOperator) || byClock) continue;
    throw new InvariantError(
      "k (only the operator revokes root keys)",
      `root key ${id} changed in a step by ${facts.actor.name}`,
    );
  }
}
