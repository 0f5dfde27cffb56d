/**
 * Per-customer limits, the service: an owner's rate limits and credits, shared by every key of the
 * owner (GET / PUT /v1/owners/{type}/{id}/limits), its credits operations, its usage report and its
 * audit log, on behalf of an Actor (owner-rules.ts says who may). Both HTTP and RPC call this; it knows
 * no HTTP and no SQL.
 *
 * A change is written with its audit event in one D1 batch, conditional on the row as read (retried on
 * a concurrent change), and reaches caches through the change feed (the table's triggers append every
 * unrevoked key of the owner), like any change of a key; this isolate catches up at once. Credits
 * operations are recorded in the rule (`recordCreditsOp`), and the owner's counter applies each once.
 */
import { type KeyLimits, recordCreditsOp } from "../keys/limit-arithmetic";
import { ownerCounterName, ownerLimitsAfter } from "../keys/owner-usage";
import type { Actor, KeyRecord, Owner } from "../model";
import type {
  CreditsInput,
  CreditsResultView,
  OwnerEventListView,
  OwnerLimitsInput,
  OwnerLimitsView,
  OwnerUsageReportView,
  UsageQueryInput,
} from "../schemas";
import { OwnerParams, parseInput } from "../schemas";
import type { OwnerAuditAction, OwnerLimitsStore, StoredOwnerLimits } from "../store/owner-limits";
import { StorageUnavailableError } from "../store/store";
import { describeError, log } from "../log";
import { ConflictError, NotFoundError } from "./errors";
import { actorName } from "./audit-changes";
import { requireOwnerLimitsAccess } from "./owner-rules";
import type { ReadViews } from "./read-views";
import { usageBuckets } from "./usage-report";
import { limitsView } from "./views";
import { type ServiceDeps, Verifier } from "./verify";

/** A write that keeps meeting concurrent changes gives up after this many reads (409). */
const WRITE_ATTEMPTS = 5;
const EVENTS_SHOWN = 100;

/** The owner a path names (`/v1/owners/{owner_type}/{owner_id}`, the id URL-encoded); 404 when it cannot be one. */
export function ownerFromPath(params: Record<string, string | undefined>): Owner {
  let id: string;
  try {
    id = decodeURIComponent(params.owner_id ?? "");
  } catch {
    throw new NotFoundError("owner");
  }
  const parsed = parseInput(OwnerParams, { owner_type: params.owner_type, owner_id: id });
  if (!parsed.success) throw new NotFoundError("owner");
  return { type: parsed.data.owner_type, id: parsed.data.owner_id };
}

export class OwnerLimitsService {
  private readonly verifier: Verifier;

  /** `views`: where get, usage and events read (read-views.ts); default: the store of record. */
  constructor(
    private readonly deps: ServiceDeps & { readonly ownerLimits: OwnerLimitsStore },
    private readonly views: NonNullable<ReadViews["ownerLimits"]> = deps.ownerLimits,
  ) {
    this.verifier = new Verifier(deps);
  }

  async get(actor: Actor, owner: Owner): Promise<OwnerLimitsView> {
    requireOwnerLimitsAccess(actor, owner, "read");
    return this.view(owner, await this.views.get(owner));
  }

  /** Replaces the fields given (null clears one); a PUT of `credits` sets the shared balance. */
  async put(actor: Actor, owner: Owner, input: OwnerLimitsInput): Promise<OwnerLimitsView> {
    requireOwnerLimitsAccess(actor, owner, "write");
    const stored = await this.write(actor, owner, "limits_updated", (current, at) => {
      const limits = ownerLimitsAfter(current?.limits ?? null, input, at);
      const before = limitsView(current?.limits ?? null);
      const after = limitsView(limits);
      const changes: Record<string, { old: unknown; new: unknown }> = {};
      if (input.ratelimits !== undefined && JSON.stringify(before.ratelimits) !== JSON.stringify(after.ratelimits)) {
        changes.ratelimits = { old: before.ratelimits, new: after.ratelimits };
      }
      if (input.credits !== undefined && (input.credits !== null || before.credits !== null)) {
        changes.credits = { old: before.credits, new: after.credits };
      }
      return Object.keys(changes).length === 0 ? null : { limits, changes };
    });
    return this.view(owner, stored);
  }

  /** POST /v1/owners/{type}/{id}/credits: as a key's credits operation, on the owner's shared balance. */
  async adjustCredits(actor: Actor, owner: Owner, input: CreditsInput): Promise<CreditsResultView> {
    requireOwnerLimitsAccess(actor, owner, "write");
    const stored = await this.write(actor, owner, "credits_updated", (current, at) => {
      const rule = current?.limits.credits;
      if (!current || !rule) {
        throw new ConflictError(
          "The owner has no credits: give it credits with PUT /v1/owners/{owner_type}/{owner_id}/limits first",
        );
      }
      const limits: KeyLimits = { ...current.limits, credits: recordCreditsOp(rule, input.op, input.amount, at) };
      return { limits, changes: { credits: { old: null, new: { op: input.op, amount: input.amount } } } };
    });
    return { remaining: stored ? await this.balance(owner, stored.limits) : null };
  }

  /** Verifications of all the owner's keys per hour or day (UTC), by outcome. */
  async usage(actor: Actor, owner: Owner, query: UsageQueryInput): Promise<OwnerUsageReportView> {
    requireOwnerLimitsAccess(actor, owner, "read");
    const report = await usageBuckets(query, (from, to) => this.views.usage(owner, from, to));
    return { owner_type: owner.type, owner_id: owner.id, granularity: query.granularity, ...report };
  }

  /** The owner's limits changes, newest first (the latest 100). */
  async events(actor: Actor, owner: Owner): Promise<OwnerEventListView> {
    requireOwnerLimitsAccess(actor, owner, "read");
    const events = await this.views.events(owner, EVENTS_SHOWN);
    return {
      data: events.map((e) => ({
        id: e.id,
        owner_type: e.owner.type,
        owner_id: e.owner.id,
        action: e.action,
        actor: e.actor,
        at: new Date(e.at).toISOString(),
        changes: e.changes as Record<string, { old: unknown; new: unknown }>,
        ip: e.ip,
        user_agent: e.userAgent,
      })),
    };
  }

  /**
   * Reads the row, asks `decide` for the new limits (null: nothing changes) and writes them with
   * their audit event, conditional on the row as read; again on a concurrent change. The stored row after.
   */
  private async write(
    actor: Actor,
    owner: Owner,
    action: OwnerAuditAction,
    decide: (
      current: StoredOwnerLimits | null,
      at: number,
    ) => { limits: KeyLimits | null; changes: Record<string, { old: unknown; new: unknown }> } | null,
  ): Promise<StoredOwnerLimits | null> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const current = await this.deps.ownerLimits.get(owner);
      const at = Date.now();
      const decision = decide(current, at);
      if (decision === null) return current;
      const origin = this.deps.origin?.();
      const event = {
        id: crypto.randomUUID(),
        owner,
        action,
        actor: actorName(actor),
        at,
        changes: decision.changes,
        ip: origin?.ip ?? null,
        userAgent: origin?.userAgent ?? null,
      };
      if (!(await this.deps.ownerLimits.put(owner, decision.limits, current?.changedAt ?? null, event))) continue;
      // Every isolate learns it from the feed; this one at once, before it answers another request.
      await this.verifier.catchUp();
      return this.deps.ownerLimits.get(owner);
    }
    throw new ConflictError("The owner's limits keep changing concurrently; try again");
  }

  private async view(owner: Owner, stored: StoredOwnerLimits | null): Promise<OwnerLimitsView> {
    const rules = limitsView(stored?.limits ?? null);
    const remaining = stored?.limits.credits ? await this.balance(owner, stored.limits) : null;
    return {
      owner_type: owner.type,
      owner_id: owner.id,
      ...rules,
      credits: rules.credits && remaining !== null ? { ...rules.credits, remaining } : rules.credits,
      updated_at: stored ? new Date(stored.changedAt).toISOString() : null,
    };
  }

  /** The owner's credit balance now (a peek), or null when its counter cannot answer. */
  private async balance(owner: Owner, limits: KeyLimits): Promise<number | null> {
    try {
      if (!this.deps.counters) throw new StorageUnavailableError("usage counters are not bound (USAGE_COUNTER)");
      const usage = await this.deps.counters.take(ownerCounterName(owner), limits, 0);
      return usage.credits?.remaining ?? null;
    } catch (error) {
      log("warn", "usage_counter_unavailable", { error: describeError(error) });
      return null;
    }
  }
}

/**
 * Makes a key just stored warm in this isolate (Verifier.remember) with its owner's limits, read after
 * the insert: a change of the owner's limits committed after this read appends the key to the feed
 * (the insert came first), so the copy cannot outlive it. When the read fails, the key is left cold
 * (read from D1, with its owner's limits, at its first verification).
 */
export async function rememberStored(
  deps: ServiceDeps & { readonly ownerLimits?: OwnerLimitsStore | undefined },
  verifier: Verifier,
  record: KeyRecord,
  seq: number,
): Promise<void> {
  try {
    const owner = deps.ownerLimits ? await deps.ownerLimits.get(record.owner) : null;
    verifier.remember(owner ? { ...record, ownerLimits: owner.limits } : record, seq);
  } catch (error) {
    log("warn", "owner_limits_unavailable", { error: describeError(error) });
    verifier.known(record.hash);
  }
}
