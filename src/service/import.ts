/**
 * Importing existing keys by hash (POST /v1/keys/import), all or nothing: every item is checked (and
 * authorized as a create would be) before any is stored; an item that carries the key itself, or a
 * format the deployment does not take, is refused; each imported key gets one `imported` event.
 */
import { sha256Hex } from "../keys/hash";
import { importedStartProblem } from "../keys/legacy";
import { type Actor, type KeyRecord, sameOwner } from "../model";
import { log } from "../log";
import type { ImportKeyInput, ImportKeysInput, ImportResultView } from "../schemas";
import { authorizeWrite } from "./access";
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
    const problem = await importProblem(deps, item);
    if (problem) {
      errors[`keys.${i}.${problem.field}`] = [problem.message];
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
      id: crypto.randomUUID(),
      hash: item.hash,
      start: item.start ?? "",
      name: item.name,
      ...powers,
      createdBy: actorName(actor),
      createdAt: item.created_at === undefined ? now : Date.parse(item.created_at),
      revokedAt: null,
      lastUsedAt: null,
      metadata: item.metadata ?? null,
      format: item.format ?? "opaque",
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

/** Why this deployment cannot take the item, or null: its format must be enabled, and the key must not be in it. */
async function importProblem(
  deps: ServiceDeps,
  item: ImportKeyInput,
): Promise<{ field: string; message: string } | null> {
  const formats = deps.config.legacyFormats;
  const format = item.format ?? "opaque";
  if (format === "sanctum" ? !formats.sanctum : formats.prefixes.length === 0) {
    return {
      field: "format",
      message: `${format} keys are not accepted here: the operator enables them with LEGACY_KEY_FORMATS`,
    };
  }
  const badStart = item.start === undefined ? null : importedStartProblem(item.start, format, formats);
  if (badStart !== null) return { field: "start", message: badStart };
  const leaked = await fieldHoldingKey(item);
  return leaked === null ? null : { field: leaked, message: "Holds the key itself: send only its SHA-256 in hash" };
}

/** Pieces of a string that could be a key: the whole, and its words of key length. */
function keyCandidates(text: string): string[] {
  return [text, ...text.split(/[\s|,;]+/).filter((word) => word.length >= 16 && word !== text)];
}

/**
 * The field of an import item that holds the key whose hash it carries (a plaintext pasted into
 * `name`, `start`, metadata or a resource), or null.
 */
async function fieldHoldingKey(item: ImportKeyInput): Promise<string | null> {
  const pending = Object.entries(item)
    .filter(([field]) => field !== "hash")
    .map(([field, value]): [unknown, string] => [value, field]);
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [value, path] = next;
    if (typeof value === "string") {
      for (const candidate of keyCandidates(value)) if ((await sha256Hex(candidate)) === item.hash) return path;
    } else if (typeof value === "object" && value !== null) {
      for (const [key, inner] of Object.entries(value)) pending.push([inner, `${path}.${key}`]);
    }
  }
  return null;
}
