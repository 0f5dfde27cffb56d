/**
 * The Python and PHP guards (packages/python, packages/php) answer as the TypeScript guard does: the
 * same problem — `type`, `title`, `status`, `detail`, `code`, `verdict` and `exceeded` — for every
 * refusing verdict code, for a missing key and for a failed verification. Their behaviour against
 * latchkey is tested by `npm run test:guards`; this file keeps their tables from drifting from the
 * TypeScript guard in `npm test`: it rebuilds each port's problems from its source (its tables, the
 * base of its `type` URIs and how it derives them) and compares them whole.
 */
import { describe, expect, it } from "vitest";
import { requireKey } from "../../packages/client/src/guard";
import { LatchkeyError } from "../../packages/client/src/errors";
import type { VerifyResult } from "../../packages/client/src/types";
import type { VerifyCode } from "../../src/schemas";
import phpGuard from "../../packages/php/src/Guard.php?raw";
import pythonGuard from "../../packages/python/latchkey/guard.py?raw";

/** Every refusing code (the type fails `npm run typecheck` when latchkey adds one). */
const REFUSING: Record<Exclude<VerifyCode, "VALID">, true> = {
  MALFORMED: true,
  NOT_FOUND: true,
  REVOKED: true,
  EXPIRED: true,
  DISABLED: true,
  IP_NOT_ALLOWED: true,
  INSUFFICIENT_SCOPE: true,
  RESOURCE_NOT_ALLOWED: true,
  RATE_LIMITED: true,
  USAGE_EXCEEDED: true,
};

type Problem = Record<string, unknown>;

/** The TypeScript guard's answer: its status and its whole problem document. */
async function typescript(answer: VerifyResult | Error, headers: HeadersInit = { "api-key": "k" }): Promise<Problem> {
  const verifier = { verify: async () => (answer instanceof Error ? Promise.reject(answer) : answer) };
  const response = await requireKey({ verifier })(new Request("http://guarded.test/x", { headers }));
  if (response === undefined) throw new Error("the request was let through");
  const problem = (await response.json()) as Problem;
  expect(problem.status).toBe(response.status);
  return problem;
}

/** One port's source, in the shape both ports share (Python dicts and tuples, PHP arrays). */
interface Port {
  source: string;
  /** A verdict row: VERDICT, status, code, title, detail. */
  row: RegExp;
  /** The no-key row: status, code, title, detail. */
  noKey: RegExp;
  /** An `exceeded` row: VERDICT, what. */
  exceeded: RegExp;
  /** The `type` base and the derivation of a problem's `type` from its code. */
  typeBase: RegExp;
  derivation: string;
}

const QUOTED = `(?:'([^']*)'|"([^"]*)")`;
const PORTS: Record<string, Port> = {
  python: {
    source: pythonGuard,
    row: new RegExp(`^\\s*"([A-Z_]+)": \\((\\d{3}), "([a-z_]+)", "([^"]+)", ${QUOTED}\\),$`, "gm"),
    noKey: new RegExp(`^NO_KEY = \\((\\d{3}), "([a-z_]+)", "([^"]+)", ${QUOTED}\\)$`, "m"),
    exceeded: /^\s*"([A-Z_]+)": "([a-z]+)",$/gm,
    typeBase: /^PROBLEM_TYPE_BASE = "([^"]+)"$/m,
    derivation: 'return PROBLEM_TYPE_BASE + code.replace("_", "-")',
  },
  php: {
    source: phpGuard,
    row: new RegExp(`^\\s*'([A-Z_]+)' => \\[(\\d{3}), '([a-z_]+)', '([^']+)', ${QUOTED}\\],$`, "gm"),
    noKey: new RegExp(`^\\s*public const NO_KEY = \\[(\\d{3}), '([a-z_]+)', '([^']+)', ${QUOTED}\\];$`, "m"),
    exceeded: /^\s*'([A-Z_]+)' => '([a-z]+)',$/gm,
    typeBase: /^\s*public const PROBLEM_TYPE_BASE = '([^']+)';$/m,
    derivation: "return self::PROBLEM_TYPE_BASE . str_replace('_', '-', $code);",
  },
};

/** The port's `type` for a code, as its source derives it (`undefined` when it derives it otherwise). */
function typeOf(port: Port, code: string): string | undefined {
  const base = port.typeBase.exec(port.source)?.[1];
  if (base === undefined || !port.source.includes(port.derivation)) return undefined;
  return base + code.replaceAll("_", "-");
}

/** The problem each refusing verdict gets from the port, rebuilt from its tables. */
function verdictProblems(port: Port): Map<string, Problem> {
  const exceeded = new Map([...port.source.matchAll(port.exceeded)].map((match) => [match[1]!, match[2]!]));
  const problems = new Map<string, Problem>();
  for (const [, verdict, status, code, title, single, double] of port.source.matchAll(port.row)) {
    const problem: Problem = {
      type: typeOf(port, code!),
      title,
      status: Number(status),
      detail: single ?? double,
      code,
      verdict,
    };
    if (exceeded.has(verdict!)) problem.exceeded = exceeded.get(verdict!);
    problems.set(verdict!, problem);
  }
  return problems;
}

function noKeyProblem(port: Port): Problem | undefined {
  const match = port.noKey.exec(port.source);
  if (match === null) return undefined;
  const [, status, code, title, single, double] = match;
  return { type: typeOf(port, code!), title, status: Number(status), detail: single ?? double, code };
}

/** The titles of the port's plain problems (a failed verification), by status. */
function titles(source: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const [, status, title] of source.matchAll(/^\s*(\d{3})(?::| =>) ["']([^"']+)["'],$/gm))
    found.set(Number(status), title!);
  return found;
}

describe("the Python and PHP guards refuse as the TypeScript guard does", () => {
  for (const [language, port] of Object.entries(PORTS)) {
    it(`${language}: the same problem (type, title, status, detail, code, verdict, exceeded) for every refusing verdict`, async () => {
      const expected = new Map<string, Problem>();
      for (const code of Object.keys(REFUSING))
        expected.set(code, await typescript({ valid: false, code, key_id: null } as VerifyResult));
      expect(verdictProblems(port)).toEqual(expected);
    });

    it(`${language}: the same problem for a request without a key`, async () => {
      expect(noKeyProblem(port)).toEqual(await typescript({ valid: false, code: "NOT_FOUND", key_id: null }, {}));
    });

    it(`${language}: the same plain problems for a failed verification`, async () => {
      const failures = [
        await typescript(new LatchkeyError(422, { type: "about:blank", title: "Validation failed", status: 422 })),
        await typescript(new LatchkeyError(429, { type: "about:blank", title: "Too many", status: 429 }, 3)),
        await typescript(new LatchkeyError(0, { type: "about:blank", title: "Network error", status: 0 })),
      ];
      expect(failures.map((failure) => failure.status)).toEqual([400, 503, 503]);
      const plain = titles(port.source);
      expect([...plain.keys()].sort()).toEqual([400, 503]);
      for (const failure of failures) {
        expect(Object.keys(failure).sort()).toEqual(["detail", "status", "title", "type"]);
        expect(failure.type).toBe("about:blank");
        expect(plain.get(failure.status as number)).toBe(failure.title);
        expect(port.source).toContain(failure.detail);
      }
    });
  }
});
