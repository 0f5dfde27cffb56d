"""Shared by the tests: where latchkey runs, the keys `npm run test:guards` created for them, and the
transports the client tests talk through."""
import json
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
    """The real transport, counting the requests that reach latchkey and keeping the headers each one
    sent (``sent``) and each answer carried (``answered``)."""

    def __init__(self) -> None:
        self.calls = []
        self.sent = []
        self.answered = []

    def __call__(self, method, url, headers, body, timeout) -> Response:
        self.calls.append((method, url))
        self.sent.append(dict(headers))
        answer = urllib_transport(method, url, headers, body, timeout)
        self.answered.append(answer.headers)
        return answer


class ScriptedTransport:
    """A stand-in for latchkey: answers each request with the next of ``answers`` (an exception is
    raised instead), recording ``(method, url, headers, body)`` in ``sent``."""

    def __init__(self, *answers) -> None:
        self.queue = list(answers)
        self.sent = []

    def __call__(self, method, url, headers, body, timeout) -> Response:
        self.sent.append((method, url, dict(headers), body))
        item = self.queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def answer(status, body=None, headers=None):
    """A scripted answer: ``body`` as JSON (a problem document from 400 on), ``headers`` by lower-case name."""
    data = b"" if body is None else json.dumps(body).encode()
    kind = {"content-type": "application/problem+json" if status >= 400 else "application/json"}
    return Response(status, {**kind, **(headers or {})}, data)


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
