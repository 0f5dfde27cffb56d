/**
 * Shared by the consumer project's tests: where latchkey runs (LATCHKEY_URL, set by
 * scripts/test-clients.mjs), tokens it accepts, and the CLI as a child process.
 */
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs from test-clients/consumer/build/). */
export const REPO = fileURLToPath(new URL("../../../", import.meta.url));

export const BASE = process.env.LATCHKEY_URL ?? "";
if (!BASE) throw new Error("LATCHKEY_URL is not set: run these tests with `npm run test:clients`");

let counter = 0;
/** A subject no other test uses, so their keys never meet. */
export function uniqueSub(label = "client"): string {
  return `${label}-${process.pid}-${Date.now()}-${++counter}`;
}

/** A JWT the local latchkey accepts (npm run token). */
export function token(sub: string, ttl?: number): string {
  const args = [`${REPO}scripts/token.mjs`, sub, ...(ttl === undefined ? [] : ["--ttl", String(ttl)])];
  return execFileSync(process.execPath, args, { cwd: REPO, encoding: "utf8" }).trim();
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The installed package's `latchkey` bin, run with `args`, `stdin` and extra environment. */
export function cli(args: readonly string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
  const bin = fileURLToPath(new URL("../node_modules/@latchkey/client/bin/latchkey.js", import.meta.url));
  return new Promise<CliRun>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? "", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}

/** A fetch that records each request it passes on. */
export function countingFetch(inner: typeof fetch = fetch) {
  const calls: Request[] = [];
  const counted: typeof fetch = async (input, init) => {
    calls.push(new Request(input, init));
    return inner(input, init);
  };
  return { fetch: counted, calls };
}
