"""The client's management calls: against latchkey, and read-your-writes (the ``Latchkey-Bookmark`` the
client keeps and sends back) with a stand-in transport."""
import os
import subprocess
import unittest

from latchkey import BOOKMARK_HEADER, LatchkeyClient, LatchkeyError
from tests.support import URL, ScriptedTransport, answer, counting_client, needs_latchkey

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

OLDER = "00000001-00000003-00000000-00000000000000000000000000000000"
NEWER = "00000001-00000005-00000000-00000000000000000000000000000000"
NEWEST = "00000001-00000007-00000000-00000000000000000000000000000000"
PAGE = {"data": [], "next_cursor": None}
#: The header as latchkey's server names it (src/http/bookmark.ts), written out: a client naming another one
#: would never be sent a bookmark, nor send one.
HEADER = "Latchkey-Bookmark"


def dev_token(owner):
    return subprocess.run(
        ["node", "scripts/token.mjs", owner], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def marked(bookmark, status=200, body=None):
    """An answer carrying ``bookmark`` as latchkey's management API sends it (transports lower-case names)."""
    return answer(status, PAGE if body is None else body, {HEADER.lower(): bookmark})


def carried(transport):
    """The bookmark each request carried (None: none)."""
    return [headers.get(HEADER) for _, _, headers, _ in transport.sent]


@needs_latchkey
class Lifecycle(unittest.TestCase):
    def test_create_list_get_rotate_revoke(self):
        client = LatchkeyClient(URL, token=dev_token(f"py-{os.getpid()}"))
        created = client.create("python lifecycle", scopes=["models:invoke"])
        self.assertTrue(created["key"])
        self.assertEqual(client.get(created["id"])["name"], "python lifecycle")
        self.assertIn(created["id"], [key["id"] for key in client.list()["data"]])
        self.assertEqual(client.verify(created["key"], scope="models:invoke")["code"], "VALID")
        rotated = client.rotate(created["id"])
        self.assertNotEqual(rotated["key"], created["key"])
        client.revoke(rotated["id"])
        self.assertIsNotNone(client.get(rotated["id"])["revoked_at"])
        with self.assertRaises(LatchkeyError) as raised:
            client.get("no-such-key")
        self.assertEqual(raised.exception.status, 404)

    def test_a_list_after_a_create_sends_back_latchkeys_bookmark(self):
        client, transport = counting_client(token=dev_token(f"py-bookmark-{os.getpid()}"))
        created = client.create("python bookmark")
        answered = transport.answered[0].get(HEADER.lower())
        self.assertTrue(answered, "latchkey answers a create with its bookmark")
        self.assertEqual(client.bookmark, answered)
        self.assertIn(created["id"], [key["id"] for key in client.list()["data"]])
        self.assertEqual(transport.sent[1].get(HEADER), answered)


class Bookmark(unittest.TestCase):
    def client(self, *answers, **options):
        self.transport = ScriptedTransport(*answers)
        return LatchkeyClient("http://latchkey.test", token="jwt", transport=self.transport, sleep=lambda _: None, **options)

    def test_the_header_is_latchkeys(self):
        self.assertEqual(BOOKMARK_HEADER, HEADER)

    def test_each_answers_bookmark_is_kept_and_sent_with_the_next_management_call(self):
        client = self.client(
            marked(OLDER, 201, {"id": "k1", "key": "lk_x"}), marked(NEWER, body={"id": "k1"}), marked(NEWEST)
        )
        self.assertIsNone(client.bookmark)
        client.create("first")
        self.assertEqual(client.bookmark, OLDER)
        client.get("k1")
        client.list()
        self.assertEqual(carried(self.transport), [None, OLDER, NEWER])
        self.assertEqual(client.bookmark, NEWEST)

    def test_a_refusals_bookmark_is_kept_too_and_an_older_or_no_bookmark_never_replaces_a_newer(self):
        client = self.client(
            marked(NEWER, 404, {"title": "Not found", "code": "not_found"}),
            marked(OLDER),  # an answer to a call that overlapped with a newer one
            answer(200, PAGE),
            marked(NEWEST, 503, {"title": "Storage unavailable"}),
            answer(200, PAGE),
            answer(200, PAGE),
        )
        with self.assertRaises(LatchkeyError):
            client.get("missing")
        self.assertEqual(client.bookmark, NEWER)
        client.list()
        self.assertEqual(client.bookmark, NEWER)
        client.list()
        self.assertEqual(client.bookmark, NEWER)
        client.list()  # a 503 carrying one, then its retry
        self.assertEqual(client.bookmark, NEWEST)
        client.list()
        self.assertEqual(carried(self.transport), [None, NEWER, NEWER, NEWER, NEWER, NEWEST])

    def test_verify_never_sends_it(self):
        client = self.client(answer(200, {"valid": False, "code": "NOT_FOUND", "key_id": None}), bookmark=NEWER)
        client.verify("lk_x")
        self.assertEqual(carried(self.transport), [None])
        self.assertEqual(client.bookmark, NEWER)

    def test_it_starts_from_the_option_and_can_be_set_or_cleared(self):
        client = self.client(answer(200, PAGE), answer(200, PAGE), answer(200, PAGE), bookmark=OLDER)
        self.assertEqual(client.bookmark, OLDER)
        client.list()
        client.bookmark = NEWER
        client.list()
        client.bookmark = None
        client.list()
        self.assertEqual(carried(self.transport), [OLDER, NEWER, None])
        self.assertIsNone(client.bookmark)
        client.bookmark = ""
        self.assertIsNone(client.bookmark, "an empty bookmark is none")


if __name__ == "__main__":
    unittest.main()
