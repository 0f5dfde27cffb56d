// Verification counts stay in the isolate's tally until a test writes them (isolateCache.usage.flush), as
// test/features/usage.test.ts does, or until USAGE_FLUSH_ENTRIES wait: the window the first count opens
// (20 s; service/usage-tally.ts) is Infinity here, so none opens. A window of 0 would write on every
// verification, and test/storage/hot-path.test.ts counts a warm verification's writes (none). The window
// itself is tested in test/storage/usage-tally.test.ts, which sets it.
import { usageTiming } from "../../src/service/usage-tally";

usageTiming.windowMs = Infinity;
