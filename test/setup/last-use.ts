// Tests read a key's last use right after the request that used it: the window that gathers last uses
// (15 s; service/last-use.ts) is 0 here, so a use is written as soon as it is queued. The window itself
// is tested in test/storage/last-use.test.ts, which sets it.
import { lastUseTiming } from "../../src/service/last-use";

lastUseTiming.windowMs = 0;
