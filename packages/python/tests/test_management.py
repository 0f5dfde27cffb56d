"""The client's management calls against latchkey."""
import os
import subprocess
import unittest

from latchkey import LatchkeyClient, LatchkeyError
from tests.support import URL, needs_latchkey

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@needs_latchkey
class Lifecycle(unittest.TestCase):
    def test_create_list_get_rotate_revoke(self):
        token = subprocess.run(
            ["node", "scripts/token.mjs", f"py-{os.getpid()}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        client = LatchkeyClient(URL, token=token)
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


if __name__ == "__main__":
    unittest.main()
