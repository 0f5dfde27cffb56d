/**
 * How an imported key's format is stored (migrations/0011_legacy_hashes.sql): `format` holds 'sanctum'
 * or 'opaque' (its CHECK allows no more), `legacy_format` the finer format of the others, for which
 * `format` says 'opaque'.
 */
import type { LegacyFormat } from "../keys/legacy";

/** The `format` and `legacy_format` columns of a record's format. */
export function formatColumns(format: LegacyFormat | undefined): [string | null, string | null] {
  if (format === undefined) return [null, null];
  return format === "sanctum" || format === "opaque" ? [format, null] : ["opaque", format];
}

/** A record's format from its `format` and `legacy_format` columns (undefined: a latchkey key). */
export function formatFromColumns(format: string | null, legacyFormat: string | null): LegacyFormat | undefined {
  return ((legacyFormat ?? format) as LegacyFormat | null) ?? undefined;
}
