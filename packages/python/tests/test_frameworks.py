"""The three adapters, each driving its README example app against latchkey (`npm run test:guards`):
the same answers as the TypeScript guard for a valid key, no key, a malformed key, a wrong scope, a
revoked key and a key over its rate limit."""
import importlib
import unittest

from tests.support import (
    KEY,
    KEY_EXHAUSTED,
    KEY_ID,
    KEY_OTHER_SCOPE,
    KEY_REVOKED,
    OWNER,
    bearer,
    needs_latchkey,
)


class GuardContract:
    """What every adapter must answer; `post(headers)` returns (status, headers, json)."""

    def post(self, headers):
        raise NotImplementedError

    def assert_problem(self, headers, status, code, verdict):
        """latchkey's problem `code` with its `type` URI, and the verdict (None: no key, no verdict)."""
        answer_status, answer_headers, problem = self.post(headers)
        self.assertEqual(answer_status, status)
        self.assertEqual(answer_headers.get("content-type"), "application/problem+json")
        self.assertEqual(problem["status"], status)
        self.assertEqual(problem["code"], code)
        self.assertEqual(problem["type"], "https://latchkey.dev/problems/" + code.replace("_", "-"))
        self.assertEqual(problem.get("verdict"), verdict)
        return answer_headers, problem

    def test_a_valid_key_reaches_the_handler_with_its_verdict(self):
        status, _, body = self.post(bearer(KEY))
        self.assertEqual(status, 200)
        self.assertEqual(body, {"key": KEY_ID, "owner": OWNER, "scopes": ["models:invoke"]})

    def test_the_api_key_header_works_too(self):
        status, _, body = self.post({"Api-Key": KEY})
        self.assertEqual(status, 200)
        self.assertEqual(body["key"], KEY_ID)

    def test_no_key_is_a_401_authentication_required(self):
        headers, problem = self.assert_problem({}, 401, "authentication_required", None)
        self.assertEqual(problem["title"], "Authentication required")
        self.assertEqual(headers.get("www-authenticate"), 'Bearer realm="api", Api-Key realm="api"')

    def test_a_malformed_key_is_a_401_malformed(self):
        self.assert_problem(bearer("not-a-key"), 401, "key_malformed", "MALFORMED")

    def test_a_wrong_scope_is_a_403(self):
        headers, problem = self.assert_problem(bearer(KEY_OTHER_SCOPE), 403, "insufficient_scope", "INSUFFICIENT_SCOPE")
        self.assertEqual((problem["title"], problem["exceeded"]), ("Insufficient scope", "scopes"))
        self.assertIsNone(headers.get("www-authenticate"))

    def test_a_revoked_key_is_a_401_revoked(self):
        self.assert_problem(bearer(KEY_REVOKED), 401, "key_revoked", "REVOKED")

    def test_a_key_over_its_rate_limit_is_a_429_with_retry_after_and_ratelimit_headers(self):
        headers, problem = self.assert_problem(bearer(KEY_EXHAUSTED), 429, "key_rate_limited", "RATE_LIMITED")
        self.assertEqual(problem["title"], "API key rate limited")
        # One request a day: the next one comes within a day.
        self.assertTrue(1 <= int(headers["retry-after"]) <= 86_400, headers.get("retry-after"))
        self.assertEqual(headers["ratelimit-limit"], "1")
        self.assertEqual(headers["ratelimit-remaining"], "0")
        self.assertTrue(0 <= int(headers["ratelimit-reset"]) <= 86_400)
        self.assertEqual([(l["name"], l["remaining"]) for l in problem["ratelimits"]], [("per-day", 0)])


def _lower(headers):
    return {name.lower(): value for name, value in headers.items()}


@needs_latchkey
class FastApiDependency(GuardContract, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from starlette.testclient import TestClient

        cls.client = TestClient(importlib.import_module("fastapi_app").app)

    def post(self, headers):
        answer = self.client.post("/generate", headers=headers)
        return answer.status_code, _lower(answer.headers), answer.json()


@needs_latchkey
class StarletteMiddleware(GuardContract, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from starlette.testclient import TestClient

        cls.client = TestClient(importlib.import_module("starlette_app").app)

    def post(self, headers):
        answer = self.client.post("/generate", headers=headers)
        return answer.status_code, _lower(answer.headers), answer.json()


@needs_latchkey
class FlaskDecorator(GuardContract, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = importlib.import_module("flask_app").app.test_client()

    def post(self, headers):
        answer = self.client.post("/generate", headers=headers)
        return answer.status_code, _lower(dict(answer.headers)), answer.get_json(force=True)


if __name__ == "__main__":
    unittest.main()
