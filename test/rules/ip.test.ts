/** The pure allow-list rules (src/keys/ip.ts): strict parsing, CIDR edges, IPv4-mapped IPv6, containment. */
import { describe, expect, it } from "vitest";
import { compileAllowList, parseAddress, parseRange, rangesWithin } from "../../src/keys/ip";

const allows = (list: string[], ip: string | undefined) => compileAllowList(list)(ip);

describe("parseAddress", () => {
  it.each([
    ["0.0.0.0", false, 0n],
    ["255.255.255.255", false, 0xffffffffn],
    ["192.0.2.1", false, 0xc0000201n],
    ["::", true, 0n],
    ["::1", true, 1n],
    ["2001:DB8::1", true, 0x20010db8000000000000000000000001n],
    ["1:2:3:4:5:6:7:8", true, 0x00010002000300040005000600070008n],
    ["1::", true, 1n << 112n],
    ["::ffff:192.0.2.1", false, 0xc0000201n],
    ["::FFFF:c000:201", false, 0xc0000201n],
    ["64:ff9b::192.0.2.1", true, (0x64ff9bn << 96n) | 0xc0000201n],
  ])("reads %s", (text, v6, value) => {
    expect(parseAddress(text)).toEqual({ v6, value });
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.-4",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4/32",
    "1::2::3",
    ":::",
    ":1::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "12345::",
    "g::1",
    "fe80::1%eth0",
    "[::1]",
    "1.2.3.4::",
    "::1.2.3.4:5",
    "::1.2.3",
    "x".repeat(65),
  ])("refuses %j", (text) => {
    expect(parseAddress(text)).toBeNull();
  });
});

describe("parseRange", () => {
  it.each([
    ["10.0.0.0/8", { v6: false, base: 0x0a000000n, prefix: 8 }],
    ["0.0.0.0/0", { v6: false, base: 0n, prefix: 0 }],
    ["192.0.2.7", { v6: false, base: 0xc0000207n, prefix: 32 }],
    ["192.0.2.7/32", { v6: false, base: 0xc0000207n, prefix: 32 }],
    ["::/0", { v6: true, base: 0n, prefix: 0 }],
    ["2001:db8::/32", { v6: true, base: 0x20010db8n << 96n, prefix: 32 }],
    ["::1/128", { v6: true, base: 1n, prefix: 128 }],
    // A mapped range written in IPv6 form is the IPv4 range; wider than the mapped block it stays IPv6.
    ["::ffff:192.0.2.0/120", { v6: false, base: 0xc0000200n, prefix: 24 }],
    ["::ffff:0.0.0.0/96", { v6: false, base: 0n, prefix: 0 }],
  ])("reads %s", (text, range) => {
    expect(parseRange(text)).toEqual(range);
  });

  it.each([
    ["10.0.0.1/8", /host bits/],
    ["2001:db8::1/32", /host bits/],
    ["1.2.3.4/33", /0 to 32/],
    ["::/129", /0 to 128/],
    ["1.2.3.4/", /0 to 32/],
    ["1.2.3.4/08", /0 to 32/],
    ["1.2.3.4/+8", /0 to 32/],
    ["1.2.3.4/8/8", /0 to 32/],
    ["/8", /IPv4 or IPv6/],
    ["example.com", /IPv4 or IPv6/],
  ])("refuses %s", (text, message) => {
    const result = parseRange(text);
    expect(typeof result).toBe("string");
    expect(result).toMatch(message);
  });
});

describe("compileAllowList", () => {
  it("matches IPv4 ranges at their edges", () => {
    const list = ["192.0.2.0/24"];
    expect(allows(list, "192.0.2.0")).toBe(true);
    expect(allows(list, "192.0.2.255")).toBe(true);
    expect(allows(list, "192.0.1.255")).toBe(false);
    expect(allows(list, "192.0.3.0")).toBe(false);
  });

  it("/32 and /128 are exactly one address; /0 is every address of its version only", () => {
    expect(allows(["203.0.113.9/32"], "203.0.113.9")).toBe(true);
    expect(allows(["203.0.113.9/32"], "203.0.113.8")).toBe(false);
    expect(allows(["2001:db8::9/128"], "2001:db8::9")).toBe(true);
    expect(allows(["2001:db8::9/128"], "2001:db8::8")).toBe(false);
    expect(allows(["0.0.0.0/0"], "255.255.255.255")).toBe(true);
    expect(allows(["0.0.0.0/0"], "::1")).toBe(false);
    expect(allows(["::/0"], "2001:db8::1")).toBe(true);
    expect(allows(["::/0"], "192.0.2.1")).toBe(false);
  });

  it("matches IPv6 ranges at their edges", () => {
    const list = ["2001:db8:1::/48"];
    expect(allows(list, "2001:db8:1::")).toBe(true);
    expect(allows(list, "2001:db8:1:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    expect(allows(list, "2001:db8:2::")).toBe(false);
    expect(allows(list, "2001:db8:0:ffff:ffff:ffff:ffff:ffff")).toBe(false);
  });

  it("treats an IPv4-mapped IPv6 client or entry as IPv4", () => {
    expect(allows(["192.0.2.0/24"], "::ffff:192.0.2.1")).toBe(true);
    expect(allows(["192.0.2.0/24"], "::ffff:c000:0301")).toBe(false);
    expect(allows(["::ffff:192.0.2.1"], "192.0.2.1")).toBe(true);
    expect(allows(["::ffff:192.0.2.1"], "192.0.2.2")).toBe(false);
  });

  it("fails closed: no address, a malformed one, a bad stored entry, an empty list", () => {
    expect(allows(["0.0.0.0/0", "::/0"], undefined)).toBe(false);
    expect(allows(["0.0.0.0/0", "::/0"], "not an ip")).toBe(false);
    expect(allows(["0.0.0.0/0", "::/0"], "10.0.0.1/32")).toBe(false);
    expect(allows(["10.0.0.1/8"], "10.0.0.1")).toBe(false);
    expect(allows([], "10.0.0.1")).toBe(false);
  });
});

describe("rangesWithin", () => {
  it("null (any address) contains everything and is contained only by null", () => {
    expect(rangesWithin(null, null)).toBe(true);
    expect(rangesWithin(null, ["10.0.0.0/8"])).toBe(true);
    expect(rangesWithin(["0.0.0.0/0", "::/0"], null)).toBe(false);
  });

  it("each child range must lie inside one parent range of its version", () => {
    expect(rangesWithin(["10.0.0.0/8"], ["10.1.0.0/16", "10.2.3.4"])).toBe(true);
    expect(rangesWithin(["10.0.0.0/8"], ["10.0.0.0/8"])).toBe(true);
    expect(rangesWithin(["10.0.0.0/8"], ["10.0.0.0/7"])).toBe(false);
    expect(rangesWithin(["10.0.0.0/8"], ["10.1.0.0/16", "11.0.0.1"])).toBe(false);
    expect(rangesWithin(["2001:db8::/32"], ["2001:db8:5::/48"])).toBe(true);
    expect(rangesWithin(["::/0"], ["10.0.0.1"])).toBe(false);
    expect(rangesWithin(["10.0.0.0/8"], ["bad"])).toBe(false);
  });
});
