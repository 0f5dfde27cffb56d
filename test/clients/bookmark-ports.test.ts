/**
 * The Python and PHP clients (packages/python, packages/php) carry read-your-writes in the header
 * latchkey's server reads and sends (src/http/bookmark.ts), as @latchkey/client does: a client naming
 * another header would silently never be sent a bookmark, nor send one. Their behaviour (keeping the
 * newest bookmark, sending it with management calls only) is tested by each package's own suite, run by
 * `npm run test:guards`; this file keeps the header's name from drifting in `npm test`, from their sources.
 */
import { describe, expect, it } from "vitest";
import { BOOKMARK_HEADER as CLIENT_HEADER } from "../../packages/client/src/client";
import phpClient from "../../packages/php/src/Client.php?raw";
import pythonClient from "../../packages/python/latchkey/client.py?raw";
import { BOOKMARK_HEADER } from "../../src/http/bookmark";

/** Each port's declaration of the header: the one constant its requests and answers use. */
const PORTS = {
  python: { source: pythonClient, declaration: /^BOOKMARK_HEADER = "([^"]*)"$/gm },
  php: { source: phpClient, declaration: /^ {4}public const BOOKMARK_HEADER = '([^']*)';$/gm },
};

describe("the Latchkey-Bookmark header of every client", () => {
  it("is the server's in @latchkey/client", () => {
    expect(CLIENT_HEADER).toBe(BOOKMARK_HEADER);
  });

  for (const [name, port] of Object.entries(PORTS)) {
    it(`is the server's in the ${name} client`, () => {
      const declared = [...port.source.matchAll(port.declaration)].map((match) => match[1]);
      expect(declared).toEqual([BOOKMARK_HEADER]);
    });
  }
});
