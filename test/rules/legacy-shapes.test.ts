/**
 * The imported key formats' shapes as pure rules (src/keys/legacy.ts, legacy-start.ts): which strings
 * each format takes, that no two enabled formats of different schemes share a string, that latchkey's
 * own keys and JWTs are never in any shape, and what LEGACY_KEY_FORMATS accepts.
 */
import { describe, expect, it } from "vitest";
import { generateKey } from "../../src/keys/format";
import {
  type LegacyFormats,
  NO_LEGACY_FORMATS,
  alternateCredential,
  enabledFormats,
  parseLegacyFormats,
  sameScheme,
  shapesOverlap,
} from "../../src/keys/legacy";
import { importedStartProblem } from "../../src/keys/legacy-start";
import { itemFormat } from "../../src/service/import-format";

const formats = (text: string): LegacyFormats => {
  const { formats: parsed, errors } = parseLegacyFormats(text, "lk");
  expect(errors).toEqual([]);
  return parsed;
};
const ALL = formats("hex32,hex64,hmac-sha256:opaque:hk_,bcrypt,opaque:sk_live_");
const schemeOf = (candidate: string, f = ALL) => alternateCredential(candidate, ["lk"], f)?.scheme ?? null;

describe("shapes", () => {
  it("hex32 and hex64 are exactly 32 and 64 lowercase hex characters", () => {
    expect(schemeOf("0123456789abcdef0123456789abcdef")).toBe("sha256");
    expect(schemeOf("0123456789abcdef".repeat(4))).toBe("sha256");
    for (const near of [
      "0123456789abcdef".repeat(2).slice(1),
      "0123456789abcdef".repeat(2) + "0",
      "0123456789ABCDEF".repeat(2),
      "g".repeat(32),
      "0".repeat(48),
    ]) {
      expect(schemeOf(near), near).toBeNull();
    }
  });

  it("base64url43 is exactly 43 base64url characters", () => {
    const f = formats("base64url43");
    expect(schemeOf("A-_".repeat(14) + "z", f)).toBe("sha256");
    for (const near of [
      "a".repeat(42),
      "a".repeat(44),
      "a".repeat(42) + "=",
      "a".repeat(42) + "+",
      "a".repeat(42) + ".",
    ]) {
      expect(schemeOf(near, f), near).toBeNull();
    }
  });

  it("hmac-sha256 entries take their shape, looked up by HMAC", () => {
    expect(schemeOf("hk_" + "a".repeat(20))).toBe("hmac");
    expect(schemeOf("hk_" + "a".repeat(15))).toBeNull();
    expect(schemeOf("0".repeat(64), formats("hmac-sha256:hex64"))).toBe("hmac");
  });

  it("bcrypt tokens are <lookup id>.<secret> with a 16-72 character secret, and carry both parts", () => {
    expect(alternateCredential(`ab_1-x.${"s".repeat(16)}`, ["lk"], ALL)).toEqual({
      material: `ab_1-x.${"s".repeat(16)}`,
      scheme: "bcrypt",
      keyId: null,
      lookupId: "ab_1-x",
      secret: "s".repeat(16),
    });
    for (const near of [
      `id.${"s".repeat(15)}`,
      `id.${"s".repeat(73)}`,
      `.${"s".repeat(20)}`,
      `${"i".repeat(65)}.${"s".repeat(20)}`,
      `a.b.${"s".repeat(20)}`,
    ]) {
      expect(schemeOf(near), near).toBeNull();
    }
  });

  it("latchkey's own keys and JWTs are in no shape, whatever is enabled", () => {
    const everything = formats("hex32,hex64,base64url43,bcrypt");
    const key = generateKey("lk");
    expect(alternateCredential(key, ["lk"], everything)).toBeNull();
    expect(
      alternateCredential("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl", ["lk"], everything),
    ).toBeNull();
  });

  it("a record counts only for a credential of its scheme; latchkey's only for latchkey's", () => {
    const sha = alternateCredential("0".repeat(64), ["lk"], ALL);
    const hmac = alternateCredential("hk_" + "a".repeat(20), ["lk"], ALL);
    expect(sameScheme("hex64", sha)).toBe(true);
    expect(sameScheme("opaque", sha)).toBe(true); // both the SHA-256 of the whole string
    expect(sameScheme("hex64", hmac)).toBe(false);
    expect(sameScheme("hmac-sha256", sha)).toBe(false);
    expect(sameScheme("bcrypt", sha)).toBe(false);
    expect(sameScheme(undefined, sha)).toBe(false);
    expect(sameScheme(undefined, null)).toBe(true);
    expect(sameScheme("hex64", null)).toBe(false);
  });
});

describe("LEGACY_KEY_FORMATS: overlaps", () => {
  it("refuses an entry a string could share with an earlier one of another scheme", () => {
    for (const [text, refused] of [
      ["sanctum,hex64", "hex64"],
      ["sanctum,base64url43", "base64url43"],
      ["hex64,hmac-sha256:hex64", "hmac-sha256:hex64"],
      ["base64url43,hmac-sha256:opaque:hk_", "hmac-sha256:opaque:hk_"],
      ["opaque:sk_,hmac-sha256:opaque:sk_live_", "hmac-sha256:opaque:sk_live_"],
      ["hex32,hmac-sha256:opaque:abc", "hmac-sha256:opaque:abc"],
      ["sanctum,opaque:sklive", "opaque:sklive"],
    ] as const) {
      const { errors } = parseLegacyFormats(text, "lk");
      expect(errors, text).toEqual([
        expect.stringMatching(new RegExp(`^LEGACY_KEY_FORMATS entry "${refused}" overlaps`)),
      ]);
    }
  });

  it("keeps entries that share strings under the same scheme, or share none", () => {
    for (const text of [
      "hex64,opaque:abc",
      "base64url43,opaque:sk_live_",
      "sanctum,hex32,opaque:sk_live_,bcrypt",
      "hmac-sha256:hex64,hex32,bcrypt",
    ]) {
      expect(parseLegacyFormats(text, "lk").errors, text).toEqual([]);
    }
  });

  it("shapesOverlap is symmetric", () => {
    const shapes = [
      { kind: "prefix", prefix: "ab" },
      { kind: "prefix", prefix: "sk_" },
      { kind: "hex32" },
      { kind: "hex64" },
      { kind: "base64url43" },
      { kind: "sanctum" },
      { kind: "bcrypt" },
    ] as const;
    for (const a of shapes)
      for (const b of shapes) expect(shapesOverlap(a, b), `${a.kind} ${b.kind}`).toBe(shapesOverlap(b, a));
  });

  it("HMAC entries are kept without the pepper (they then find upgraded keys only)", () => {
    const { formats: parsed, errors } = parseLegacyFormats("hex32,hmac-sha256:hex64", "lk");
    expect(parsed).toEqual({
      ...NO_LEGACY_FORMATS,
      unprefixed: ["hex32"],
      hmac: { prefixes: [], unprefixed: ["hex64"] },
    });
    expect(errors).toEqual([]);
  });
});

describe("an import item's format", () => {
  it("is the one named, or the only one enabled; required once several are", () => {
    expect(itemFormat(undefined, formats("hex64"))).toBe("hex64");
    expect(itemFormat("hex64", formats("hex64"))).toBe("hex64");
    expect(itemFormat(undefined, formats("hex64,hex32"))).toEqual({
      field: "format",
      message: expect.stringMatching(/^Required/),
    });
    expect(itemFormat(undefined, NO_LEGACY_FORMATS)).toEqual({
      field: "format",
      message: expect.stringMatching(/LEGACY_KEY_FORMATS/),
    });
    expect(itemFormat("opaque", formats("hex64"))).toEqual({
      field: "format",
      message: expect.stringMatching(/not accepted/),
    });
    expect(enabledFormats(ALL)).toEqual(["opaque", "hex32", "hex64", "hmac-sha256", "bcrypt"]);
  });
});

describe("a start of the new formats", () => {
  it("is the beginning of a key of the format", () => {
    expect(importedStartProblem("0a1b", "hex64", ALL)).toBeNull();
    expect(importedStartProblem("0A1B", "hex64", ALL)).toMatch(/hex/);
    expect(importedStartProblem("aB_-", "base64url43", ALL, ["lk"])).toBeNull();
    expect(importedStartProblem("lk_abc", "base64url43", ALL, ["lk"])).toMatch(/latchkey/);
    expect(importedStartProblem("hk_ab", "hmac-sha256", ALL)).toBeNull();
    expect(importedStartProblem("sk_live_ab", "hmac-sha256", ALL)).toMatch(/accepted shape/);
    expect(importedStartProblem("k1f.ab", "bcrypt", ALL, [], "k1f")).toBeNull();
    expect(importedStartProblem("k1", "bcrypt", ALL, [], "k1f")).toBeNull();
    expect(importedStartProblem("k2f.", "bcrypt", ALL, [], "k1f")).toMatch(/lookup_id/);
    expect(importedStartProblem("k1f.a.b", "bcrypt", ALL, [], "k1f")).toMatch(/lookup_id/);
  });
});
