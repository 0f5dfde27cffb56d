/**
 * One model run as a fast-check property, and its report: on failure, the shrunk sequence as the
 * steps did it (actor, request, answer, keys minted), the invariant broken, and how to replay it.
 */
import fc from "fast-check";
import { sha256Hex } from "../../src/keys/hash";
import { firstKeysArb, stepArbs } from "./commands";
import { firstRootArb, rootStepArbs } from "./roots";
import { type Model, type OwnerName, type Token, newReal } from "./world";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
function randomAlnum(length: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(length)), (b) => ALNUM[b % ALNUM.length]).join("");
}

/** Legacy tokens another system issued, one per entry of `issuers`: Sanctum and opaque in turn. */
async function legacyTokens(issuers: readonly OwnerName[]): Promise<Token[]> {
  return Promise.all(
    issuers.map(async (trueOwner, i): Promise<Token> => {
      const label = `t${i + 1}`;
      if (i % 2 === 0) {
        const secret = randomAlnum(40);
        const sends = `${i + 1}|${secret}`;
        return { label, sends, secrets: [sends, secret], hash: await sha256Hex(secret), format: "sanctum", trueOwner };
      }
      const key = `sk_live_${randomAlnum(24)}`;
      return { label, sends: key, secrets: [key], hash: await sha256Hex(key), format: "opaque", trueOwner };
    }),
  );
}

export interface ModelRunOptions {
  readonly runs: number;
  readonly seed: number;
  readonly maxCommands: number;
}

/** Runs the model; resolves to null when every run kept every invariant, else to the failure's report. */
export async function runModel({ runs, seed, maxCommands }: ModelRunOptions): Promise<string | null> {
  const last: { failing?: { quota: number; issuers: readonly OwnerName[]; log: readonly string[]; error: unknown } } =
    {};
  const result = await fc.check(
    fc.asyncProperty(
      fc.integer({ min: 3, max: 5 }),
      fc.array(fc.constantFrom<OwnerName>("P", "Q", "A", "W"), { minLength: 4, maxLength: 4 }),
      firstKeysArb,
      firstRootArb,
      fc.commands([...stepArbs, ...rootStepArbs], { maxCommands, size: "max" }),
      async (quota, issuers, first, firstRoot, steps) => {
        const real = { ...(await newReal(quota)), t0: Date.now() };
        const model: Model = { keys: [], roots: [], tokens: await legacyTokens(issuers), cascaded: [], log: [] };
        try {
          await fc.asyncModelRun(() => ({ model, real }), [...first, ...(firstRoot ? [firstRoot] : []), ...steps]);
        } catch (error) {
          // The last failing run is the shrunk counterexample: keep what its steps did.
          last.failing = { quota, issuers, log: [...model.log], error };
          throw error;
        }
      },
    ),
    { seed, numRuns: runs },
  );
  if (!result.failed) return null;
  const failing = last.failing;
  const error = failing?.error ?? result.errorInstance;
  const message = error instanceof Error ? error.message : String(error);
  return [
    message,
    `after ${result.numRuns} run(s), shrunk ${result.numShrinks} time(s); replay: npm run model -- --seed ${seed} --runs ${runs}`,
    `quota ${failing?.quota}; legacy tokens t1-t4 issued by ${failing?.issuers.join(", ")}; P, Q: people; A: admin of W; M: member of W; r1…: root keys`,
    ...(failing?.log ?? []).map((step, i) => `  ${i + 1}. ${step}`),
  ].join("\n");
}
