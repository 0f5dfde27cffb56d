/**
 * HMAC-imported keys (`hmac-sha256:<shape>`, keys/legacy-digest.ts): found, and upgraded on first use.
 *
 * Such a key is imported under the HMAC-SHA256 of its token under LEGACY_HMAC_PEPPER. Its first
 * verification finds it there and, in one conditional write with an `upgraded` audit event, stores it
 * under the plain SHA-256 of the whole token instead (its HMAC digest is kept in `legacy_hash`, only
 * so that importing it again is a conflict). From then on the token is found by its SHA-256, as any
 * key, and the pepper is needed for keys not yet used only: once every key is upgraded, it can go.
 *
 * A token in an HMAC shape is therefore looked up by its SHA-256 first (a record found there counts
 * only if it is an upgraded HMAC key), then by its HMAC digest (when a pepper is set). Concurrent first
 * uses all verify: the write is conditional on the digest still being the key's hash, so one wins and
 * the others write nothing. The D1 triggers append the old digest to the change feed, so every
 * isolate drops copies found under it. Only credentials in an HMAC shape reach this module.
 */
import { hmacSha256Hex } from "../keys/legacy-digest";
import type { AuditEvent, CompactRecord } from "../model";
import { describeError, log } from "../log";
import type { TtlLru } from "../util/lru";
import type { UpgradeHost } from "./legacy-check";

/** A token in an HMAC shape: the SHA-256 it is found by once upgraded, and its HMAC digest (null: no pepper). */
export interface HmacCredential {
  readonly sha: string;
  readonly digest: string | null;
}

export async function hmacCredential(sha: string, token: string, pepper: string | null): Promise<HmacCredential> {
  return { sha, digest: pepper === null ? null : await hmacSha256Hex(pepper, token) };
}

/** Whether a record is an HMAC key already upgraded (stored under the SHA-256 of its token). */
export function isUpgradedHmac(record: CompactRecord | string | undefined): record is CompactRecord {
  return typeof record === "object" && record.format === "hmac-sha256" && record.legacyHash !== undefined;
}

/** The record stored under a hash (memory, KV, D1), or the id of a key this isolate knows was revoked. */
export type Find = (hash: string) => Promise<CompactRecord | string | undefined>;

/** What the upgrade tells the verifier: the key moved from its old hash to the record's. */
export interface HmacUpgradeHost extends UpgradeHost {
  moved(from: string, record: CompactRecord, seq: number): Promise<void>;
}

/**
 * The record an HMAC-shaped token stands for: upgraded (by its SHA-256), or found by its HMAC digest
 * and upgraded now; the id of a key known revoked; or undefined.
 */
export async function findHmacKey(
  find: Find,
  unknown: TtlLru<string, true>,
  now: number,
  host: HmacUpgradeHost,
  credential: HmacCredential,
): Promise<CompactRecord | string | undefined> {
  const { sha, digest } = credential;
  const shaWasUnknown = unknown.get(sha, now) === true;
  const upgraded = await find(sha);
  if (typeof upgraded === "string" || isUpgradedHmac(upgraded)) return upgraded;
  if (digest === null) return undefined; // no pepper: only keys already upgraded are found
  const digestWasUnknown = unknown.get(digest, now) === true;
  const found = await find(digest);
  if (typeof found === "object") return upgradeHmac(host, found, sha);
  if (found !== undefined || !shaWasUnknown || digestWasUnknown) return found;
  // Storage no longer holds the digest, and the SHA-256 was remembered here as unknown (the negative
  // cache): another isolate upgraded the key since. Read it again rather than answer NOT_FOUND.
  unknown.delete(sha);
  const moved = await find(sha);
  return typeof moved === "string" || isUpgradedHmac(moved) ? moved : undefined;
}

/** The `upgraded` audit event of a key whose lookup becomes SHA-256: what was checked, never a hash. */
export function upgradedEvent(host: Pick<UpgradeHost, "origin">, record: CompactRecord, from: string): AuditEvent {
  const origin = host.origin?.();
  return {
    id: crypto.randomUUID(),
    keyId: record.id,
    owner: record.owner,
    action: "upgraded",
    actor: `key:${record.id}`,
    at: Date.now(),
    changes: { hash_scheme: { old: from, new: "sha256" } },
    ip: origin?.ip ?? null,
    userAgent: origin?.userAgent ?? null,
  };
}

/**
 * Stores an HMAC key found by its digest under the SHA-256 of its token, with its `upgraded` event:
 * the record as now stored, or as found when the write did not happen (another first use upgraded it:
 * the feed brings that here; or it failed: logged, the verification still stands).
 */
export async function upgradeHmac(host: HmacUpgradeHost, record: CompactRecord, sha: string): Promise<CompactRecord> {
  if (record.format !== "hmac-sha256" || record.legacyHash !== undefined) return record;
  const event = upgradedEvent(host, record, "hmac-sha256");
  try {
    const seq = await host.store.upgradeHmacDigest(record.id, record.hash, sha, event);
    if (seq === null) return record;
    const upgraded: CompactRecord = { ...record, hash: sha, legacyHash: record.hash };
    await host.moved(record.hash, upgraded, seq);
    return upgraded;
  } catch (error) {
    log("warn", "legacy_upgrade_failed", { key_id: record.id, error: describeError(error) });
    return record;
  }
}

/**
 * What this isolate's memory alone says of an HMAC-shaped token: the upgraded record, or the one under
 * its digest (upgraded on its next verification with storage); undefined when memory holds neither.
 */
export function hmacInMemory(
  credential: HmacCredential,
  inMemory: (hash: string) => CompactRecord | undefined,
): CompactRecord | undefined {
  const upgraded = inMemory(credential.sha);
  if (isUpgradedHmac(upgraded)) return upgraded;
  return credential.digest === null ? undefined : inMemory(credential.digest);
}
