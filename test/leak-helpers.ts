/**
 * A local stand-in for GitHub's secret scanning: a P-256 key pair whose public key a stubbed
 * GITHUB_SECRET_SCANNING_KEYS_URL publishes, and reports signed with it as GitHub signs them.
 */
import { vi } from "vitest";
import type { Env } from "../src/env";
import { call, envWith } from "./helpers";

/** DER of one INTEGER holding the big-endian `bytes` (minimal: leading zeros dropped, sign byte added). */
function derInteger(bytes: Uint8Array): number[] {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const body = [...bytes.subarray(start)];
  if (body[0]! & 0x80) body.unshift(0);
  return [0x02, body.length, ...body];
}

/** The DER form of a raw `r || s` signature, as GitHub sends it. */
export function rawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  const content = [...derInteger(raw.subarray(0, half)), ...derInteger(raw.subarray(half))];
  return new Uint8Array([0x30, content.length, ...content]);
}

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

export interface Signer {
  readonly identifier: string;
  readonly pem: string;
  /** Base64 DER signature of `body`. */
  sign(body: string): Promise<string>;
}

export async function newSigner(identifier = crypto.randomUUID()): Promise<Signer> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer);
  const lines = base64(spki).match(/.{1,64}/g) ?? [];
  return {
    identifier,
    pem: `-----BEGIN PUBLIC KEY-----\n${lines.join("\n")}\n-----END PUBLIC KEY-----\n`,
    async sign(body) {
      const raw = new Uint8Array(
        await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, new TextEncoder().encode(body)),
      );
      return base64(rawToDer(raw));
    },
  };
}

/**
 * A keys URL of its own (so each test starts with an empty key cache) served by a stubbed fetch with
 * `published`'s keys, and an env pointing at it. `fetches` counts the requests to it; `failing` makes
 * it answer 500.
 */
export function stubKeysUrl(published: Signer[], vars: Partial<Env> = {}) {
  const url = `https://keys.test/${crypto.randomUUID()}`;
  const state = { fetches: 0, failing: false, published };
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const target = input instanceof Request ? input.url : String(input);
    if (target !== url) return realFetch(input, init);
    state.fetches += 1;
    if (state.failing) return new Response("down", { status: 500 });
    const public_keys = state.published.map((s, i) => ({
      key_identifier: s.identifier,
      key: s.pem,
      is_current: i === 0,
    }));
    return Response.json({ public_keys });
  });
  return { state, testEnv: envWith({ GITHUB_SECRET_SCANNING_KEYS_URL: url, ...vars }) };
}

export interface GithubMatch {
  token: string;
  type?: string;
  url?: string;
  source?: string;
}

/** POSTs a report to /v1/leaks/github, signed by `signer` unless `headers` says otherwise. */
export async function reportToGithubEndpoint(
  testEnv: Env,
  signer: Signer,
  matches: GithubMatch[] | string,
  headers?: Record<string, string>,
): Promise<Response> {
  const body =
    typeof matches === "string"
      ? matches
      : JSON.stringify(
          matches.map((m) => ({
            token: m.token,
            type: m.type ?? "latchkey_api_key",
            url: m.url ?? "https://github.com/octo/repo/blob/abc/config.js",
            source: m.source ?? "content",
          })),
        );
  return call("POST", "/v1/leaks/github", {
    raw: body,
    env: testEnv,
    headers: headers ?? {
      "content-type": "application/json",
      "Github-Public-Key-Identifier": signer.identifier,
      "Github-Public-Key-Signature": await signer.sign(body),
    },
  });
}
