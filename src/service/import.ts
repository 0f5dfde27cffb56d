/**
 * Importing existing keys by hash (POST /v1/keys/import), all or nothing: every item is checked (and
 * authorized as a create would be) before any is stored; an item that carries the key itself, or a
 * format the deployment does not take, is refused; each imported key gets one `imported` event.
 */
import { idInBucket, ownerBucket } from "../keys/shard";
import { type Actor, type KeyRecord, sameOwner } from "../model";
import { log } from "../log";
import type { ImportKeysInput, ImportResultView } from "../schemas";
import { authorizeWrite } from "./access";
import { importedDigest } from "./import-format";
import { actorName, auditEvent, creationChanges } from "./audit-changes";
import { limitCreation, refusal } from "./creation";
import { ForbiddenError, ValidationError } from "./errors";
import { authorizeNewKey, limitsForNewKey, mayImport } from "./rules";
import type { ServiceDeps, Verifier } from "./verify";

const IMPORT_REFUSED =
  "Importing keys is for workspace admins (their workspace's keys) and trusted services; the operator allows it to people and keys with IMPORT_ALLOWED=personal";

/**
 * Registers existing keys by hash, all or nothing: every item is checked (and authorized as a
 * create would be) before any is stored. A hash already stored, or repeated in the batch, is a
 * conflict, reported per item. Each imported key gets one `imported` audit event, in the same
 * store write (a conflict writes none).
 */
export async function importKeys(
  deps: ServiceDeps,
  verifier: Verifier,
  caller: Actor,
  input: ImportKeysInput,
): Promise<ImportResultView> {
  const actor = await authorizeWrite(deps, verifier, caller);
  const errors: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  const records: KeyRecord[] = [];
  const now = Date.now();
  for (const [i, item] of input.keys.entries()) {
    const digest = await importedDigest(item, deps.config);
    if ("field" in digest) {
      errors[`keys.${i}.${digest.field}`] = [digest.message];
      continue;
    }
    let powers: ReturnType<typeof authorizeNewKey>;
    try {
      powers = authorizeNewKey(actor, item);
    } catch (error) {
      if (error instanceof ForbiddenError) {
        throw new ForbiddenError(`keys.${i}.${error.exceeded}`, error.message, error.kind);
      }
      if (error instanceof ValidationError) {
        for (const [field, messages] of Object.entries(error.errors)) errors[`keys.${i}.${field}`] = messages;
        continue;
      }
      throw error;
    }
    if (!mayImport(actor, powers.owner, deps.config.importAllowed)) {
      throw new ForbiddenError(`keys.${i}.owner`, IMPORT_REFUSED);
    }
    records.push({
      id: deps.config.shards.count === 1 ? crypto.randomUUID() : idInBucket(await ownerBucket(powers.owner)),
      hash: digest.hash,
      start: item.start ?? "",
      name: item.name,
      ...powers,
      createdBy: actorName(actor),
      createdAt: item.created_at === undefined ? now : Date.parse(item.created_at),
      revokedAt: null,
      lastUsedAt: item.last_used_at === undefined ? null : Date.parse(item.last_used_at),
      metadata: item.metadata ?? null,
      format: digest.format,
      ...(digest.legacyHash === undefined ? {} : { legacyHash: digest.legacyHash }),
      parentId: actor.kind === "api_key" ? actor.key.id : null,
      enabled: true,
      updatedAt: null,
      rotatedFrom: null,
      ...limitsForNewKey(actor, {}),
    });
  }
  if (Object.keys(errors).length > 0) throw new ValidationError(errors);

  // Quotas as for a create: an import of N counts N, against the limiter and MAX_KEYS_PER_OWNER.
  for (const record of records) await limitCreation(deps, record.owner);
  // A hash repeated in the batch conflicts with its first occurrence, in the same transaction.
  const maxKeysPerOwner = deps.config.maxKeysPerOwner;
  const outcome = await deps.store.insertNew(
    records,
    records.map((record) => auditEvent(deps, actor, record, "imported", creationChanges(record), now)),
    { maxKeysPerOwner, now },
  );
  if ("refused" in outcome) throw refusal(outcome.refused, maxKeysPerOwner);
  const { inserted } = outcome;
  await logForeignConflicts(deps, actor, records, inserted);
  const stored = new Map<string, string>();
  records.forEach((record, i) => {
    if (!inserted[i]) return;
    stored.set(record.hash, record.id);
    // Read from D1 on first use (with its feed position); only a cached "unknown" must go.
    verifier.known(record.hash);
  });
  const results = records.map((record) => {
    const id = stored.get(record.hash) ?? null;
    stored.delete(record.hash); // a repeat of the same hash later in the batch is a conflict
    return { hash: record.hash.slice(0, 12), status: id ? ("imported" as const) : ("conflict" as const), id };
  });
  const imported = results.filter((r) => r.status === "imported").length;
  return { imported, conflicts: results.length - imported, results };
}

/**
 * A conflict with another owner's key answers exactly as any conflict (`conflict`, no id), so an
 * import tells no one whose a hash is; the operator learns of it from this warning (no hash in full).
 */
async function logForeignConflicts(
  deps: ServiceDeps,
  actor: Actor,
  records: KeyRecord[],
  inserted: boolean[],
): Promise<void> {
  const seen = new Set<string>();
  for (const [i, record] of records.entries()) {
    if (seen.has(record.hash)) continue;
    seen.add(record.hash);
    if (inserted[i]) continue;
    const existing = (await deps.store.findByHash(record.hash))?.record;
    if (!existing || sameOwner(existing.owner, record.owner)) continue;
    log("warn", "import_conflict_other_owner", {
      actor: actorName(actor),
      owner: `${record.owner.type}:${record.owner.id}`,
      existing_key_id: existing.id,
      existing_owner: `${existing.owner.type}:${existing.owner.id}`,
      hash_prefix: record.hash.slice(0, 12),
    });
  }
}
