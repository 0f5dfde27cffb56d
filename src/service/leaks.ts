/**
 * Leaked keys (docs/leaks.md): a report names strings found in public, and each one that is a key of
 * this deployment is revoked (or disabled, LEAK_ACTION) at once, with a `leaked` audit event saying
 * where it was found. Reports come from GitHub's secret scanning (signature checked by the HTTP layer),
 * from operators, root keys and trusted Workers.
 *
 * - A string that is not a well-formed latchkey key (prefix, length, alphabet, checksum) is answered
 *   `false_positive` without any lookup.
 * - The rest are looked up by hash in one query and changed in one write (store/leaks.ts), however
 *   many a report names, so a batch of a thousand finishes in a few D1 round trips.
 * - Idempotent: a key already revoked (to disable: already disabled) is `true_positive` and left
 *   alone; a key named twice is acted on once, with one event.
 * - A key the reporter may not act on (a root key's report of a key of an owner it does not cover) is
 *   answered as if unknown: a report never tells whose a key is.
 * - The change reaches this isolate's memory at once and every other isolate through the feed, as a
 *   revocation by DELETE /v1/keys/{id} does; the event never holds the key nor its hash.
 */
import { isWellFormedKeyOf } from "../keys/format";
import { sha256Hex } from "../keys/hash";
import type { Actor, LeakAction, Owner } from "../model";
import type { LeakReportInput, LeakReportResultView } from "../schemas";
import type { LeakChange, LeakStore, ReportedKey } from "../store/leaks";
import { actorName } from "./audit-changes";
import { ForbiddenError } from "./errors";
import { ownerCovered, requireRootScope } from "./root-rules";
import type { Origin, Verifier } from "./verify";

/** The most KV copies one report deletes itself (the feed makes any other copy untrusted). */
const MAX_KV_DELETES = 50;

/**
 * Who reports: GitHub's secret scanning (a verified signature), a trusted Worker (RPC), or an
 * authenticated caller over HTTP.
 */
export type LeakReporter =
  { readonly kind: "github" } | { readonly kind: "service" } | { readonly kind: "caller"; readonly actor: Actor };

/** One reported string and where it was found. */
export interface LeakItem {
  readonly token: string;
  /** The token type's name (GitHub's `type`), echoed in the feedback. */
  readonly type: string;
  /** What kind of place or who found it (GitHub's `source`: commit, content, npm, ...). */
  readonly source: string | null;
  readonly url: string | null;
}

export interface LeakOutcome {
  readonly token_hash: string;
  readonly token_type: string;
  readonly label: "true_positive" | "false_positive";
  readonly key_id: string | null;
  readonly action: "revoked" | "disabled" | null;
}

export interface LeakDeps {
  readonly store: LeakStore;
  readonly verifier: Verifier;
  readonly acceptedPrefixes: readonly string[];
  readonly action: LeakAction;
  readonly origin?: (() => Origin) | undefined;
}

const DONE: Record<LeakAction, "revoked" | "disabled"> = { revoke: "revoked", disable: "disabled" };

/**
 * Which owners' keys the reporter may act on (a pure rule): GitHub, operators and trusted Workers
 * (RPC: the binding is the trust) any owner's; anyone else none (ForbiddenError).
 */
export function leakReach(reporter: LeakReporter): (owner: Owner) => boolean {
  if (reporter.kind !== "caller") return () => true;
  const { actor } = reporter;
  if (actor.kind === "service") return () => true;
  if (actor.kind === "user" && actor.operator) return () => true;
  if (actor.kind === "root") {
    requireRootScope(actor.root, "keys:write");
    const { owners } = actor.root;
    return (owner) => ownerCovered(owners, owner);
  }
  throw new ForbiddenError(
    "operator",
    "Reporting leaked keys is for operators (OPERATOR_ROLES), root keys and trusted Workers; revoke your own key with DELETE /v1/keys/{id}",
    "role",
  );
}

/** How the reporter is named in the audit log. */
function reporterName(reporter: LeakReporter): string {
  if (reporter.kind !== "caller") return reporter.kind;
  return actorName(reporter.actor);
}

/** Whether the action still has something to do to the key. */
export function stillToDo(action: LeakAction, key: Pick<ReportedKey, "revokedAt" | "enabled">): boolean {
  return key.revokedAt === null && (action === "revoke" || key.enabled);
}

/** The `leaked` event's changes: the action's field, and where the key was found (never the key nor its hash). */
function leakChanges(action: LeakAction, at: number, item: LeakItem, reporter: LeakReporter): LeakChange["changes"] {
  const found = { reporter: reporter.kind === "github" ? "github" : "report", source: item.source, url: item.url };
  const changes: Record<string, { old: unknown; new: unknown }> =
    action === "revoke"
      ? { revoked_at: { old: null, new: new Date(at).toISOString() } }
      : { enabled: { old: true, new: false } };
  changes.leak = { old: null, new: found };
  return changes;
}

export class LeakIntake {
  constructor(private readonly deps: LeakDeps) {}

  /** POST /v1/leaks and RPC reportLeaks: the keys themselves, with who found them and where. */
  async reportKeys(reporter: LeakReporter, input: LeakReportInput): Promise<LeakReportResultView> {
    const items = input.keys.map((token) => ({
      token,
      type: "latchkey",
      source: input.source ?? null,
      url: input.url ?? null,
    }));
    const outcomes = await this.report(reporter, items);
    return { data: outcomes.map(({ token_hash, label, key_id, action }) => ({ token_hash, label, key_id, action })) };
  }

  /** Judges and acts on each item; one outcome per item, in order. */
  async report(reporter: LeakReporter, items: readonly LeakItem[]): Promise<LeakOutcome[]> {
    const reach = leakReach(reporter);
    const { action } = this.deps;
    const hashes = await Promise.all(items.map((item) => sha256Hex(item.token)));
    const candidates = new Set<string>();
    items.forEach((item, i) => {
      if (isWellFormedKeyOf(item.token, this.deps.acceptedPrefixes)) candidates.add(hashes[i]!);
    });
    const found = new Map<string, ReportedKey>();
    for (const key of await this.deps.store.findByHashes([...candidates])) {
      if (reach(key.owner)) found.set(key.hash, key);
    }

    const at = Date.now();
    const leaks: LeakChange[] = [];
    const named = new Set<string>();
    items.forEach((item, i) => {
      const hash = hashes[i]!;
      const key = found.get(hash);
      if (!key || named.has(hash) || !stillToDo(action, key)) return;
      named.add(hash);
      leaks.push({ hash, changes: leakChanges(action, at, item, reporter) });
    });
    const origin = this.deps.origin?.();
    const { records, seq } = await this.deps.store.markLeaked(action, leaks, at, {
      actor: reporterName(reporter),
      ip: origin?.ip ?? null,
      userAgent: origin?.userAgent ?? null,
    });
    // This isolate refuses each changed key from the next request on; the feed tells the others.
    const { verifier } = this.deps;
    await Promise.all(
      records.map((record, i) =>
        action === "revoke"
          ? verifier.forget(record, i < MAX_KV_DELETES)
          : verifier.changed(record, seq, i < MAX_KV_DELETES),
      ),
    );

    const changed = new Set(records.map((record) => record.hash));
    return items.map((item, i) => {
      const hash = hashes[i]!;
      const key = found.get(hash);
      // The first item naming a changed key reports the action; a repeat reports none.
      const acted = key !== undefined && changed.delete(hash);
      return {
        token_hash: hash,
        token_type: item.type,
        label: key ? "true_positive" : "false_positive",
        key_id: key?.id ?? null,
        action: acted ? DONE[action] : null,
      };
    });
  }
}
