"""Shared by the tests: where latchkey runs and the keys `npm run test:guards` created for them."""
import os
import sys
import unittest
from pathlib import Path

from latchkey import LatchkeyClient, Response, urllib_transport

PACKAGE = Path(__file__).resolve().parent.parent
EXAMPLES = PACKAGE / "examples"
sys.path.insert(0, str(EXAMPLES))

ENV = os.environ
URL = ENV.get("LATCHKEY_URL", "")
LIVE = bool(URL)
needs_latchkey = unittest.skipUnless(LIVE, "LATCHKEY_URL is not set: run `npm run test:guards`")

KEY = ENV.get("LATCHKEY_KEY", "")
KEY_ID = ENV.get("LATCHKEY_KEY_ID", "")
OWNER = ENV.get("LATCHKEY_OWNER", "")
KEY_OTHER_SCOPE = ENV.get("LATCHKEY_KEY_OTHER_SCOPE", "")
KEY_REVOKED = ENV.get("LATCHKEY_KEY_REVOKED", "")
KEY_EXHAUSTED = ENV.get("LATCHKEY_KEY_EXHAUSTED", "")
KEY_LIMITED = ENV.get("LATCHKEY_KEY_LIMITED", "")


class CountingTransport:
    """The real transport, counting the requests that reach latchkey."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, method, url, headers, body, timeout) -> Response:
        self.calls.append((method, url))
        return urllib_transport(method, url, headers, body, timeout)


def counting_client(**options):
    transport = CountingTransport()
    return LatchkeyClient(URL, transport=transport, **options), transport


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def readme_blocks(language):
    """The README's fenced code blocks in `language`, as written."""
    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    blocks, current = [], None
    for line in text.splitlines(keepends=True):
        if current is None and line.strip() == f"```{language}":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks
