// npm run model [-- --runs N] [--seed S] [--commands C] [--only a,b]: the model test
// (test/rules/model.test.ts) run longer than `npm test` runs it: N random sequences (default 500) from seed
// S (default: a new one, printed, so a failure can be replayed), each of up to C steps (default 25),
// checking only the invariants named by --only (letters a-k, test/model/invariants.ts; default all).
// A failure prints the shrunk sequence of steps and the seed and path to replay it with.
import { spawn } from "node:child_process";
import { root } from "./dev-config.mjs";

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = process.argv[at + 1];
  if (value === undefined || !/^-?\d+$/.test(value)) {
    console.error(`--${name} takes a whole number`);
    process.exit(2);
  }
  return value;
}

const runs = option("runs", "500");
const seed = option("seed", String(Math.floor(Math.random() * 2 ** 31)));
const commands = option("commands", "");
const at = process.argv.indexOf("--only");
const only = at === -1 ? "" : (process.argv[at + 1] ?? "");
if (!/^([a-k],)*[a-k]$|^$/.test(only)) {
  console.error("--only takes invariant letters a-k, comma-separated");
  process.exit(2);
}
console.log(
  `model test: ${runs} runs from seed ${seed}${commands ? `, up to ${commands} steps each` : ""}${only ? `, invariants ${only}` : ""}`,
);
const child = spawn("npx", ["vitest", "run", "test/rules/model.test.ts"], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, MODEL_RUNS: runs, MODEL_SEED: seed, MODEL_COMMANDS: commands, MODEL_ONLY: only },
});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
