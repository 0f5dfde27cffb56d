// node --test bench/capacity.test.mjs (also run by npm run bench:smoke): the capacity model's arithmetic
// on deployments small enough to work out by hand, and its defaults against latchkey's source.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { root } from "../scripts/dev-config.mjs";
import { LATCHKEY, PRICES, firstLimit, harmonic, hitRate, model, popularity } from "./capacity.mjs";

const costs = {
  warmRequest: 100,
  kvHitExtra: 20,
  d1HitExtra: 50,
  feedPoll: 10,
  doCallExtra: 200,
  doCallWallMs: 2,
  bytesPerKey: 500,
};
/** One key, one isolate that never dies, one verification a second, nothing else happening. */
const tiny = {
  keys: 1,
  verificationsPerSecond: 1,
  locations: 1,
  requestsPerIsolate: 1,
  isolateLifetimeSeconds: 1e12,
  limitedShare: 1,
  createsPerSecond: 0,
  revocationsPerSecond: 0,
  changesPerSecond: 0,
};
const close = (actual, expected, tolerance = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} is not ${expected} (± ${tolerance})`);

test("one key in one isolate: hit rates, reads, fills and polls as worked out by hand", () => {
  const r = model(tiny, costs);
  assert.equal(r.isolates, 1);
  // Kept 270 s on average after each miss, asked once a second: 270 hits per miss.
  close(r.memoryHitRate, 270 / 271, 1e-6);
  close(r.kvReads, 1 / 271, 1e-6);
  // KV sees one read per 271 s, and a copy lives 300 s: it hits 300/571 of them.
  close(r.kvHitRate, 300 / 571, 1e-6);
  close(r.d1Reads.verifyFallbacks, 1 / 571, 1e-6);
  close(r.kvWrites, 1 / 571, 1e-6); // each D1 fill writes its KV copy
  close(r.d1Reads.feedPolls, 1 / LATCHKEY.feedSeconds);
  close(r.d1Reads.isolateStarts, 1e-12);
  assert.equal(r.d1Writes.management, 0);
  close(r.doCalls, 1); // every verification of a key with limits calls its counter
  close(r.hottestLimitedRate, 1);
  close(r.storageGb, 500 / 1e9);
  assert.equal(r.revocationBoundSeconds, 5);
  // CPU: the request, its cold paths, the polls and the counter call, in ms per second.
  close(r.cpuMs, (100 + (1 / 271) * 20 + (1 / 571) * 30 + 0.2 * 10 + 200) / 1000, 1e-6);
});

test("last use: an isolate writes what gathered during a window, in batches, not each key on its own", () => {
  // 100 keys asked 100 times a second in one isolate: each key's use is due about once a minute.
  const busy = { ...tiny, keys: 100, verificationsPerSecond: 100, requestsPerIsolate: 100, zipf: 0 };
  const due = 100 * hitRate(1, LATCHKEY.lastUsedSeconds) * (1 / LATCHKEY.lastUsedSeconds); // ≈ 1.6 keys/s
  // Gathered for 15 s: a write per window, of fewer keys than a batch holds.
  close(model(busy, costs).d1Writes.lastUsed, due / (1 + due * 15), 1e-9);
  // Without the window, one write per due key.
  close(model(busy, costs, { lastUseWindowSeconds: 0 }).d1Writes.lastUsed, due, 1e-9);
  const flood = { ...busy, keys: 100_000, verificationsPerSecond: 100_000, requestsPerIsolate: 100_000 };
  // With more than a batch's worth due in a window, full batches: u / touchBatch.
  const many = model(flood, costs).d1Writes.lastUsed;
  close(many, (100_000 * hitRate(1, 60) * (1 / 60)) / LATCHKEY.touchBatch, 1e-6);
});

test("usage counts: an isolate writes what gathered during a window, so a quiet one writes less", () => {
  // 10 keys asked once a second each in one isolate: every window holds (almost) all 10 keys' counts.
  const busy = { ...tiny, keys: 10, verificationsPerSecond: 10, requestsPerIsolate: 10, zipf: 0 };
  const entries = 10 * (1 - Math.exp(-LATCHKEY.usageWindowSeconds));
  const windows = 10 / (1 + 10 * LATCHKEY.usageWindowSeconds); // a window opens 0.1 s after the last closed
  const r = model(busy, costs);
  close(r.d1Writes.usageCounts, windows, 1e-9);
  const lastUsedRows = 10 * hitRate(1, LATCHKEY.lastUsedSeconds) * (1 / LATCHKEY.lastUsedSeconds);
  close(r.d1RowsWritten, lastUsedRows + windows * entries, 1e-9);
  // One verification a minute: a window a minute, not one per window length.
  const quiet = { ...tiny, verificationsPerSecond: 1 / 60 };
  close(model(quiet, costs).d1Writes.usageCounts, 1 / 60 / (1 + LATCHKEY.usageWindowSeconds / 60), 1e-9);
  // More keys in a window than statements of a batch hold: one statement per usageRowsPerStatement rows.
  const flood = { ...busy, keys: 100_000, verificationsPerSecond: 100_000, requestsPerIsolate: 100_000 };
  const floodEntries = 100_000 * (1 - Math.exp(-LATCHKEY.usageWindowSeconds));
  const floodWindows = 100_000 / (1 + 100_000 * LATCHKEY.usageWindowSeconds);
  close(model(flood, costs).d1Writes.usageCounts, (floodWindows * floodEntries) / LATCHKEY.usageRowsPerStatement, 1e-6);
});

test("the bill: the plan, then each line item beyond what the plan includes", () => {
  // Far inside every included amount but the counter calls: 1/s is 2.63 M a month, 1 M included.
  const one = model(tiny, costs);
  close(one.bill["DO requests"], ((30.4375 * 86_400 - 1e6) / 1e6) * 0.15, 1e-9);
  close(one.monthly, PRICES.base + one.bill["DO requests"] + one.bill["DO duration"], 1e-9);
  close(one.bill["DO duration"], 0); // 2 ms a call, once a second: 0.002 × 0.128 GB-s/s, inside the 400,000 included
  const r = model({ ...tiny, verificationsPerSecond: 100, requestsPerIsolate: 100, limitedShare: 0.0001 }, costs);
  const month = 30.4375 * 86_400;
  close(r.bill["Workers requests"], ((100 * month - 10e6) / 1e6) * 0.3, 1e-6);
  close(r.bill["DO requests"], 0); // 0.01 calls/s: 26,298 a month, inside the million included
});

test("limits: D1 queries per database from feed polls alone, and the hottest key with limits", () => {
  // 5,000 isolates polling every 5 s: 1,000 queries/s on one database, before any verification misses.
  const polls = model({ ...tiny, locations: 5000, verificationsPerSecond: 5000, limitedShare: 0.0001 }, costs);
  close(polls.d1Reads.feedPolls, 1000);
  assert.equal(firstLimit(polls), "D1 queries/s (one database)");
  const hot = model({ ...tiny, verificationsPerSecond: 2000, requestsPerIsolate: 2000 }, costs);
  assert.equal(firstLimit(hot), "DO calls/s (hottest key with limits)");
  assert.equal(firstLimit(model(tiny, costs)), null);
});

test("popularity: shares sum to one, Zipf's head is exact, the tail's approximation is close", () => {
  const groups = popularity(1e6, 1);
  close(
    groups.reduce((s, g) => s + g.share, 0),
    1,
    1e-9,
  );
  assert.equal(
    groups.reduce((s, g) => s + g.count, 0),
    1e6,
  );
  close(groups[0].share, 1 / harmonic(1e6, 1), 1e-12);
  let exact = 0;
  for (let i = 1; i <= 50_000; i++) exact += 1 / i;
  close(harmonic(50_000, 1), exact, 1e-9);
  let exactS = 0;
  for (let i = 1; i <= 50_000; i++) exactS += i ** -1.2;
  close(harmonic(50_000, 1.2), exactS, 1e-9);
  close(hitRate(1, 300), 300 / 301);
});

test("the model's defaults are latchkey's", () => {
  const source = (file) => readFileSync(`${root}${file}`, "utf8");
  const constant = (file, name) => {
    const found = new RegExp(`${name} = ([\\d_]+)`).exec(source(file));
    assert.ok(found, `${name} is not defined in ${file}`);
    return Number(found[1].replaceAll("_", ""));
  };
  assert.equal(LATCHKEY.kvCopySeconds, constant("src/store/cache.ts", "KV_TTL_SECONDS"));
  assert.match(source("src/service/memory-record.ts"), /RECORD_MEMORY_MS = KV_TTL_SECONDS \* 1000/);
  // Each record is kept 80-100 % of that lifetime: the model takes the mean.
  assert.match(source("src/service/memory-record.ts"), /RECORD_MEMORY_MS \* \(0\.8 \+ 0\.2 \* Math\.random\(\)\)/);
  assert.equal(LATCHKEY.recordMemorySeconds, 0.9 * LATCHKEY.kvCopySeconds);
  assert.equal(LATCHKEY.feedSeconds, constant("src/config.ts", "DEFAULT_SYNC_SECONDS"));
  assert.equal(LATCHKEY.maxStalenessSeconds, constant("src/config.ts", "DEFAULT_MAX_STALENESS_SECONDS"));
  assert.equal(LATCHKEY.lastUsedSeconds * 1000, constant("src/service/last-use.ts", "LAST_USED_INTERVAL_MS"));
  const window = /lastUseTiming = \{ windowMs: ([\d_]+) \}/.exec(source("src/service/last-use.ts"));
  assert.equal(LATCHKEY.lastUseWindowSeconds * 1000, Number(window?.[1].replaceAll("_", "")));
  assert.equal(LATCHKEY.touchBatch, constant("src/store/store.ts", "TOUCH_BATCH"));
  assert.equal(LATCHKEY.usageWindowSeconds * 1000, constant("src/service/usage-tally.ts", "USAGE_WINDOW_MS"));
  assert.match(source("src/service/usage-tally.ts"), /usageTiming = \{ windowMs: USAGE_WINDOW_MS \}/);
  assert.equal(LATCHKEY.usageFlushEntries, constant("src/service/usage-tally.ts", "USAGE_FLUSH_ENTRIES"));
  assert.equal(LATCHKEY.usageRowsPerStatement, constant("src/store/usage-counts.ts", "ROWS_PER_STATEMENT"));
});

test("management reads: on the primary without read replication; the replicas' share leaves it, and waits less", () => {
  const reads = {
    ...tiny,
    managementReadsPerSecond: 100,
    d1WriteRoundTripSeconds: 0.03,
    replicaRoundTripSeconds: 0.005,
  };
  const off = model(reads, costs);
  close(off.d1Reads.management, 100);
  close(off.replicaReads, 0);
  close(off.managementReadSeconds, 0.03);
  const on = model({ ...reads, replicaShare: 0.9 }, costs);
  close(on.d1Reads.management, 10); // what is left on the primary
  close(on.replicaReads, 90);
  close(off.d1ReadQueries - on.d1ReadQueries, 90);
  close(on.managementReadSeconds, 0.9 * 0.005 + 0.1 * 0.03);
  // Replicas take queries off the primary's limit, not off the bill: rows read are billed wherever read.
  close(on.d1RowsRead, off.d1RowsRead);
  close(off.d1RowsRead - model(tiny, costs).d1RowsRead, 100 * LATCHKEY.managementReadRows);
  // Enough of them reach one database's limit on their own, unless the replicas serve them.
  const many = { ...tiny, managementReadsPerSecond: 2000, limitedShare: 0.0001 };
  assert.equal(firstLimit(model(many, costs)), "D1 queries/s (one database)");
  assert.equal(firstLimit(model({ ...many, replicaShare: 1 }, costs)), null);
  // Nothing else moves: the verification's reads, the feed and the writes are the primary's either way.
  assert.deepEqual({ ...on.d1Reads, management: 0 }, { ...off.d1Reads, management: 0 });
  assert.deepEqual(on.d1Writes, off.d1Writes);
});

test("the page a management read is taken to read is latchkey's default page and one more", () => {
  const source = readFileSync(`${root}src/schemas/common.ts`, "utf8");
  const defaultPage = Number(/z\.lte\(100, PAGE_LIMIT_MESSAGE\),\s*\)[^,]*,\s*(\d+),/.exec(source)[1]);
  assert.equal(LATCHKEY.managementReadRows, defaultPage + 1);
});
