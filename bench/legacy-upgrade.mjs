// npm run bench:bcrypt: the CPU cost of a bcrypt-imported key's verifications (src/service/legacy-check.ts).
// The first verification checks the bcrypt hash once (bcryptjs, pure JS, as the Worker runs it), then
// stores the SHA-256 of the whole token; the second compares that SHA-256. Measured with
// process.cpuUsage (user + system CPU of this process), per cost factor, median of several runs. Node's
// V8 is the engine workerd runs; bench/RESULTS.md has the numbers and what they mean on Workers' plans.
import { createHash, randomBytes } from "node:crypto";
import bcrypt from "bcryptjs";

// --smoke (bench:smoke, CI): one run at the cheapest cost, so the script cannot rot unseen.
const smoke = process.argv.includes("--smoke");
const COSTS = smoke ? [4] : (process.env.BCRYPT_COSTS ?? "4,8,10,12").split(",").map(Number);
const RUNS = smoke ? 1 : Number(process.env.BCRYPT_RUNS ?? 7);

function cpuMs(work) {
  const before = process.cpuUsage();
  const result = work();
  const used = process.cpuUsage(before);
  return { ms: (used.user + used.system) / 1000, result };
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const secret = randomBytes(24).toString("base64url");
const token = `4f2a.${secret}`;
const digest = createHash("sha256").update(token).digest("hex");
console.log(`bcrypt-imported key: first verification (bcrypt check) and second (SHA-256), CPU ms, median of ${RUNS}`);
console.log("cost | first (bcrypt) | second (sha256)");
for (const cost of COSTS) {
  const hash = bcrypt.hashSync(secret, cost);
  const first = [];
  const second = [];
  for (let i = 0; i < RUNS; i++) {
    const { ms, result } = cpuMs(() => bcrypt.compareSync(secret, hash));
    if (!result) throw new Error("bcrypt check failed");
    first.push(ms);
    second.push(cpuMs(() => createHash("sha256").update(token).digest("hex") === digest).ms);
  }
  console.log(
    `${String(cost).padStart(4)} | ${median(first).toFixed(1).padStart(14)} | ${median(second).toFixed(3).padStart(15)}`,
  );
}
