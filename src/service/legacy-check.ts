/**
 * The secret check of a bcrypt-imported key, and its upgrade on first use (keys/legacy-digest.ts).
 *
 * Such a key is found by its lookup id, so finding it proves nothing: the token's secret must match.
 * Until the key's first verification its legacy hash is a bcrypt hash (the slow check, once); on a
 * match it is replaced by the SHA-256 of the whole token with an `upgraded` audit event, in one
 * conditional write (concurrent first uses: one wins, the others write nothing), so every later
 * verification compares one SHA-256, as fast as any key. Only credentials in the `bcrypt` shape reach
 * this module: other keys pay nothing for it.
 */
import { sha256Hex } from "../keys/hash";
import type { AlternateCredential } from "../keys/legacy";
import { bcryptCost, bcryptMatches, isUpgradedDigest, legacyLookupHash, sameHex } from "../keys/legacy-digest";
import type { AuditEvent, CompactRecord } from "../model";
import type { KeyStore } from "../store/store";
import { describeError, log } from "../log";
import { type HmacCredential, hmacCredential, upgradedEvent } from "./hmac-upgrade";

/** What the upgrade needs of the verifier. */
export interface UpgradeHost {
  readonly store: KeyStore;
  readonly origin?: (() => { ip?: string | null; userAgent?: string | null }) | undefined;
  /** The record changed here at feed position `seq`: the next verification here sees it. */
  changed(record: CompactRecord, seq: number): Promise<void>;
}

/** A bcrypt credential: the token's secret and the SHA-256 of the whole token. */
export interface BcryptCredential {
  readonly secret: string;
  readonly digest: string;
}

/**
 * What a legacy credential is looked up by; for a bcrypt token what its record is checked with, for a
 * token in an HMAC shape its HMAC digest too (service/hmac-upgrade.ts).
 */
export async function legacyCredential(
  key: string,
  alternate: AlternateCredential,
  pepper: string | null,
): Promise<{ hash: string; alternate: AlternateCredential; bcrypt?: BcryptCredential; hmac?: HmacCredential }> {
  const hash = await legacyLookupHash(alternate);
  if (alternate.scheme === "hmac") return { hash, alternate, hmac: await hmacCredential(hash, key, pepper) };
  if (alternate.scheme !== "bcrypt") return { hash, alternate };
  return { hash, alternate, bcrypt: { secret: alternate.secret ?? "", digest: await sha256Hex(key) } };
}

/**
 * The check that needs no bcrypt: true or false once the key is upgraded, null while its legacy hash
 * is still a bcrypt hash. False for a record that is not a bcrypt key.
 */
export function upgradedCheck(credential: BcryptCredential, record: CompactRecord): boolean | null {
  const stored = record.legacyHash;
  if (record.format !== "bcrypt" || stored === undefined) return false;
  return isUpgradedDigest(stored) ? sameHex(stored, credential.digest) : null;
}

/**
 * Whether the token's secret is the key's: the upgraded digest compared, or else the bcrypt hash
 * checked and, on a match, upgraded (a failed write is logged: the verification still stands).
 */
export async function checkLegacySecret(
  host: UpgradeHost,
  credential: BcryptCredential,
  record: CompactRecord,
): Promise<boolean> {
  const quick = upgradedCheck(credential, record);
  if (quick !== null) return quick;
  const bcryptHash = record.legacyHash!;
  if (!(await bcryptMatches(credential.secret, bcryptHash))) return false;
  await upgrade(host, record, bcryptHash, credential.digest);
  return true;
}

async function upgrade(host: UpgradeHost, record: CompactRecord, from: string, to: string): Promise<void> {
  const event = upgradedEvent(host, record, `bcrypt (cost ${bcryptCost(from)})`);
  try {
    const seq = await host.store.upgradeLegacyHash(record.id, from, to, event);
    // null: a concurrent first use upgraded it; the feed brings that record here.
    if (seq !== null) await host.changed({ ...record, legacyHash: to }, seq);
  } catch (error) {
    log("warn", "legacy_upgrade_failed", { key_id: record.id, error: describeError(error) });
  }
}
