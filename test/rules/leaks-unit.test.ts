/**
 * The pure parts of the leaked-key intake: DER signatures to WebCrypto's raw form (leading zeros and
 * sign bytes included), the pattern registered with secret scanners (checked against docs/leaks.md),
 * and who may report.
 */
import { describe, expect, inject, it } from "vitest";
import { base64Bytes, derToRawSignature } from "../../src/keys/ecdsa-der";
import { generateKey, isWellFormedKey, scannerPattern } from "../../src/keys/format";
import { leakReach, stillToDo } from "../../src/service/leaks";
import { ForbiddenError } from "../../src/service/errors";
import type { CompactRecord } from "../../src/model";
import { rawToDer } from "../leak-helpers";

const filled = (first: number[], size = 32) => {
  const out = new Uint8Array(size).fill(0x11);
  out.set(first, 0);
  return out;
};
const raw = (r: Uint8Array, s: Uint8Array) => new Uint8Array([...r, ...s]);

describe("DER to raw ECDSA signatures", () => {
  it("round-trips signatures made by WebCrypto, which verify again after the conversion", async () => {
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const data = new TextEncoder().encode('[{"token":"x"}]');
    for (let i = 0; i < 20; i++) {
      const signature = new Uint8Array(
        await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, data),
      );
      const back = derToRawSignature(rawToDer(signature));
      expect(back).toEqual(signature);
      expect(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pair.publicKey, back!, data)).toBe(true);
    }
  });

  it("drops the sign byte of a value whose top bit is set (33 bytes in DER)", () => {
    const r = filled([0x80]);
    const s = filled([0xff]);
    const der = rawToDer(raw(r, s));
    expect(der[3]).toBe(33); // r's length, with its 0x00 sign byte
    expect(derToRawSignature(der)).toEqual(raw(r, s));
  });

  it("left-pads a value with leading zero bytes (shorter than 32 bytes in DER)", () => {
    const r = filled([0x00, 0x00, 0x05]);
    const s = filled([0x00, 0x7f]);
    const der = rawToDer(raw(r, s));
    expect(der[3]).toBe(30);
    expect(derToRawSignature(der)).toEqual(raw(r, s));
    // Even a value of one byte.
    const tiny = new Uint8Array(32);
    tiny[31] = 1;
    expect(derToRawSignature(rawToDer(raw(tiny, s)))).toEqual(raw(tiny, s));
  });

  it("accepts a redundant leading zero and refuses everything that is not exactly one signature", () => {
    const good = rawToDer(raw(filled([0x01]), filled([0x02])));
    // A non-minimal encoding with an extra zero still reads as the same numbers.
    const padded = new Uint8Array([0x30, good[1]! + 1, 0x02, 33, 0x00, ...good.subarray(4)]);
    expect(derToRawSignature(padded)).toEqual(raw(filled([0x01]), filled([0x02])));

    const bad: [string, number[]][] = [
      ["empty", []],
      ["not a sequence", [0x31, ...good.subarray(1)]],
      ["sequence length too long", [0x30, good[1]! + 1, ...good.subarray(2)]],
      ["sequence length too short", [0x30, good[1]! - 1, ...good.subarray(2)]],
      ["trailing byte", [0x30, good[1]! + 1, ...good.subarray(2), 0x00]],
      ["r not an integer", [0x30, good[1]!, 0x04, ...good.subarray(3)]],
      ["negative r", [0x30, 6, 0x02, 1, 0x80, 0x02, 1, 0x01]],
      ["empty r", [0x30, 5, 0x02, 0, 0x02, 1, 0x01]],
      ["s missing", [0x30, 3, 0x02, 1, 0x01]],
      ["r wider than 32 bytes", [...rawToDer(raw(new Uint8Array(33).fill(0x11), filled([0x01])))]],
      ["long-form length below 128", [0x30, 0x81, 6, 0x02, 1, 0x01, 0x02, 1, 0x01]],
    ];
    for (const [name, bytes] of bad) expect(derToRawSignature(new Uint8Array(bytes)), name).toBeNull();
  });

  it("reads base64 and refuses what is not", () => {
    expect(base64Bytes("AAEC")).toEqual(new Uint8Array([0, 1, 2]));
    expect(base64Bytes("AAE=")).toEqual(new Uint8Array([0, 1]));
    for (const text of ["", "   ", "A*==", "not base64!", "AAE==="]) expect(base64Bytes(text), text).toBeNull();
  });
});

describe("the pattern registered with secret scanners", () => {
  const { texts } = inject("docs");
  const documented = /```regex\n(.+)\n```/.exec(texts["docs/leaks.md"] ?? "")?.[1];

  it("is the one docs/leaks.md documents, derived from the key format", () => {
    expect(documented).toBe(scannerPattern("lk"));
  });

  it("matches fresh keys, in text too, and not root keys, other prefixes, truncations or random strings", () => {
    const pattern = new RegExp(documented ?? "^$");
    const whole = new RegExp(`^(?:${documented ?? "$^"})$`);
    for (let i = 0; i < 50; i++) {
      const key = generateKey("lk");
      expect(isWellFormedKey(key, "lk")).toBe(true);
      expect(whole.test(key), key).toBe(true);
      expect(pattern.exec(`const apiKey = "${key}";`)?.[0]).toBe(key);
      expect(pattern.test(key.slice(0, -1)), "truncated").toBe(false);
      expect(pattern.test(`${key}x`), "longer").toBe(false);
      // A key with another prefix (a root key's, or another deployment's).
      for (const prefix of ["lk_root", "lkr", "sk_live", "xlk"]) {
        expect(pattern.test(generateKey(prefix)), prefix).toBe(false);
      }
    }
    const random = Array.from(crypto.getRandomValues(new Uint8Array(40)), (b) => b.toString(16)).join("");
    expect(pattern.test(random)).toBe(false);
    expect(pattern.test(`lk_${"a".repeat(48)}`)).toBe(false);
  });

  it("follows KEY_PREFIX", () => {
    expect(new RegExp(scannerPattern("sk_live")).test(generateKey("sk_live"))).toBe(true);
    expect(new RegExp(scannerPattern("sk_live")).test(generateKey("lk"))).toBe(false);
  });
});

describe("who may report leaks", () => {
  const user = (operator: boolean) =>
    ({ kind: "user", sub: "u", orgId: null, roles: [], workspaceAdmin: false, operator }) as const;
  const owner = { type: "user", id: "someone" } as const;

  it("GitHub, operators and trusted Workers reach every owner", () => {
    expect(leakReach({ kind: "github" })(owner)).toBe(true);
    expect(leakReach({ kind: "caller", actor: user(true) })(owner)).toBe(true);
    expect(leakReach({ kind: "caller", actor: { kind: "service", owner: { type: "user", id: "x" } } })(owner)).toBe(
      true,
    );
  });

  it("a person who is no operator, and an API key, are refused", () => {
    expect(() => leakReach({ kind: "caller", actor: user(false) })).toThrow(ForbiddenError);
    const key = { id: "k", owner } as unknown as CompactRecord;
    expect(() => leakReach({ kind: "caller", actor: { kind: "api_key", key } })).toThrow(ForbiddenError);
  });

  it("acts only on keys still to change", () => {
    expect(stillToDo("revoke", { revokedAt: null, enabled: false })).toBe(true);
    expect(stillToDo("revoke", { revokedAt: 1, enabled: true })).toBe(false);
    expect(stillToDo("disable", { revokedAt: null, enabled: true })).toBe(true);
    expect(stillToDo("disable", { revokedAt: null, enabled: false })).toBe(false);
    expect(stillToDo("disable", { revokedAt: 1, enabled: true })).toBe(false);
  });
});
