/**
 * Verification counters in Workers Analytics Engine: one data point per verification (its design:
 * writes are fire-and-forget and sampled at query time), so operators can chart outcomes per owner
 * and per key with SQL (docs/operations.md, "Verification counters"). The binding is optional; without it nothing is written.
 *
 * A data point: index = the key's owner (`user:<id>`, `workspace:<id>`, or `none` for unknown keys),
 * blob1 = the verdict code (VALID, REVOKED, ...), blob2 = the key id (empty when unknown),
 * double1 = 1 (so SUM(_sample_interval * double1) counts verifications). Never the key or its hash.
 */
import type { CompactRecord } from "../model";
import type { VerifyCode } from "../schemas";

export function verificationCounter(
  dataset: AnalyticsEngineDataset,
): (code: VerifyCode, record: CompactRecord | null) => void {
  return (code, record) => {
    try {
      dataset.writeDataPoint({
        indexes: [record ? `${record.owner.type}:${record.owner.id}` : "none"],
        blobs: [code, record?.id ?? ""],
        doubles: [1],
      });
    } catch {
      // Counting must never fail a verification; Analytics Engine drops points under pressure anyway.
    }
  };
}
