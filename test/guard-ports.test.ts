/**
 * The Python and PHP guards (packages/python, packages/php) answer as the TypeScript guard does: the
 * same status, title and detail for every refusing verdict code, and the same details for a missing
 * key and a failed verification. Their behaviour against latchkey is tested by `npm run
 * test:guards`; this file keeps their tables from drifting from the TypeScript guard in `npm test`.
 */
import { describe, expect, it } from "vitest";
import { requireKey } from "../packages/client/src/guard";
import { LatchkeyError } from "../packages/client/src/errors";
import type { VerifyResult } from "../packages/client/src/types";
import type { VerifyCode } from "../src/schemas";
import phpGuard from "../packages/php/src/Guard.php?raw";
import pythonGuard from "../packages/python/latchkey/guard.py?raw";

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

type Answer = { status: number; title: string; detail: string };

async function typescript(answer: VerifyResult | Error, headers: HeadersInit = { "api-key": "k" }): Promise<Answer> {
  const verifier = { verify: async () => (answer instanceof Error ? Promise.reject(answer) : answer) };
  const response = await requireKey({ verifier })(new Request("http://guarded.test/x", { headers }));
  if (response === undefined) throw new Error("the request was let through");
  const problem = (await response.json()) as Answer;
  return { status: response.status, title: problem.title, detail: problem.detail };
}

function table(source: string, pattern: RegExp): Map<string, Answer> {
  const titles = new Map<number, string>();
  for (const [, status, title] of source.matchAll(/^\s*(\d{3})(?::| =>) ["']([^"']+)["'],$/gm))
    titles.set(Number(status), title!);
  const rows = new Map<string, Answer>();
  for (const match of source.matchAll(pattern)) {
    const status = Number(match[2]);
    rows.set(match[1]!, { status, title: titles.get(status) ?? "?", detail: match[3] ?? match[4]! });
  }
  return rows;
}

const PORTS = {
  python: table(pythonGuard, /^\s*"([A-Z_]+)": \((\d{3}), "([^"]*)"\),$/gm),
  php: table(phpGuard, /^\s*'([A-Z_]+)' => \[(\d{3}), (?:'([^']*)'|"([^"]*)")\],$/gm),
};
const SOURCES = { python: pythonGuard, php: phpGuard };

describe("the Python and PHP guards refuse as the TypeScript guard does", () => {
  for (const [language, rows] of Object.entries(PORTS)) {
    it(`${language}: the same status, title and detail for every refusing code`, async () => {
      const expected = new Map<string, Answer>();
      for (const code of Object.keys(REFUSING))
        expected.set(code, await typescript({ valid: false, code, key_id: null } as VerifyResult));
      expect(rows).toEqual(expected);
    });

    it(`${language}: the same details for a missing key and a failed verification`, async () => {
      const source = SOURCES[language as keyof typeof SOURCES];
      const failures = [
        await typescript({ valid: false, code: "NOT_FOUND", key_id: null }, {}),
        await typescript(new LatchkeyError(422, { type: "about:blank", title: "Validation failed", status: 422 })),
        await typescript(new LatchkeyError(429, { type: "about:blank", title: "Too many", status: 429 }, 3)),
        await typescript(new LatchkeyError(0, { type: "about:blank", title: "Network error", status: 0 })),
      ];
      expect(failures.map((failure) => failure.status)).toEqual([401, 400, 503, 503]);
      for (const { detail } of failures) expect(source).toContain(detail);
    });
  }
});
