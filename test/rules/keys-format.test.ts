import { describe, expect, it } from "vitest";
import { BODY_LENGTH, CHECKSUM_LENGTH, crc32, generateKey, isWellFormedKey, keyStart } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

describe("key format", () => {
  it("is prefix, 43 base62 characters of body and a 6-character checksum", () => {
    const key = generateKey("lk");
    expect(key).toMatch(new RegExp(`^lk_[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}$`));
    expect(isWellFormedKey(key, "lk")).toBe(true);
  });

  it("never repeats a key and spreads the body over the alphabet", () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateKey("lk")));
    expect(keys.size).toBe(2000);
    const seen = new Set([...keys].flatMap((k) => [...k.slice(3, 3 + BODY_LENGTH)]));
    expect(seen.size).toBe(62);
  });

  it("uses the configured prefix and rejects keys of another prefix", () => {
    const key = generateKey("acme");
    expect(key.startsWith("acme_")).toBe(true);
    expect(isWellFormedKey(key, "acme")).toBe(true);
    expect(isWellFormedKey(key, "lk")).toBe(false);
  });

  it("rejects every single-character change of a key", () => {
    for (let round = 0; round < 5; round++) {
      const key = generateKey("lk");
      for (let i = 0; i < key.length; i++) {
        for (const c of BASE62 + "_-") {
          if (c === key[i]) continue;
          const changed = key.slice(0, i) + c + key.slice(i + 1);
          expect(isWellFormedKey(changed, "lk"), `position ${i} -> ${c}`).toBe(false);
        }
      }
    }
  });

  it("rejects truncated, extended, swapped and random strings", () => {
    const key = generateKey("lk");
    expect(isWellFormedKey(key.slice(0, -1), "lk")).toBe(false);
    expect(isWellFormedKey(`${key}a`, "lk")).toBe(false);
    const swapped = key.slice(0, 10) + key[11] + key[10] + key.slice(12);
    if (swapped !== key) expect(isWellFormedKey(swapped, "lk")).toBe(false);
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const random = `lk_${Array.from({ length: BODY_LENGTH + CHECKSUM_LENGTH }, () => BASE62[Math.floor(Math.random() * 62)]).join("")}`;
      if (isWellFormedKey(random, "lk")) accepted++;
    }
    expect(accepted).toBe(0);
    expect(isWellFormedKey("", "lk")).toBe(false);
    expect(isWellFormedKey("lk_é".padEnd(key.length, "a"), "lk")).toBe(false);
  });

  it("computes the standard CRC32", () => {
    expect(crc32("123456789")).toBe(0xcbf43926);
  });

  it("shows only the prefix and six characters as start", () => {
    const key = generateKey("lk");
    expect(keyStart(key, "lk")).toBe(key.slice(0, 9));
  });

  it("hashes with SHA-256 as hex", async () => {
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
