/**
 * The model test: random sequences of create, import, rotate, PATCH (powers, limits, credits,
 * disable/enable), credits, revoke and cascade revoke, by random actors (people, a workspace admin, a
 * member, RPC, the keys minted along the way, and root keys an operator makes with random owner
 * patterns and scopes, which the operator revokes and the clock expires), against the Worker in
 * workerd, with a small model beside it (every key and root key minted, who minted it, its secret).
 * After every step the invariants of test/model/invariants.ts and test/model/root-invariants.ts are
 * checked against D1 (and /v1/verify): attenuation, lineage, reach, quota, secrecy, import ownership,
 * import secrecy, and root keys' (never a product key, their reach, their keys outlive them, a dead one
 * refused at once). Refusals (401, 403, 404, 409, 422, 429) are
 * always acceptable: the model never assumes that a request succeeds or is refused, only that the
 * invariants hold whatever happened.
 *
 * Seeded and bounded here; `npm run model -- --runs N --seed S` runs it longer (scripts/model.mjs).
 */
import { describe, expect, inject, it } from "vitest";
import { captureLogs } from "../helpers";
import { checking } from "../model/invariants";
import { runModel } from "../model/run";

declare module "vitest" {
  export interface ProvidedContext {
    modelRun: { runs: string; seed: string; commands: string; only: string };
  }
}

/** `npm test`'s run: a fixed seed and a number of runs that keeps the file well under a minute. */
const DEFAULT_RUNS = 30;
const DEFAULT_SEED = 20_261_206;
const DEFAULT_COMMANDS = 25;

const given = inject("modelRun");
const runs = Number(given.runs) || DEFAULT_RUNS;
const seed = given.seed === "" ? DEFAULT_SEED : Number(given.seed);
const maxCommands = Number(given.commands) || DEFAULT_COMMANDS;
if (given.only !== "") checking.only = new Set(given.only.split(",").map((letter) => letter.trim()));
const which = checking.only ? `invariants ${[...checking.only].join(",")}` : "every invariant";

describe("the model", () => {
  it(
    `keeps ${which} over ${runs} random sequences of up to ${maxCommands} steps (seed ${seed})`,
    async () => {
      // What the service logs on the way (an import meeting another owner's hash is reported to the
      // operator, by design) is captured, not printed; every line is one structured JSON record.
      const logs = captureLogs();
      let failure: string | null;
      try {
        failure = await runModel({ runs, seed, maxCommands });
      } finally {
        logs.restore();
      }
      // The report: the invariant broken and the shrunk sequence, step by step.
      if (failure !== null) expect.fail(failure);
      for (const line of logs.raw) expect(() => JSON.parse(line), line).not.toThrow();
    },
    Math.max(120_000, runs * 5_000),
  );
});
