"""The guard's rules that need no latchkey: the key's headers, trust in the verdict, the usage
headers of a 429, and failures to get a verdict."""
import json
import unittest
import urllib.request

from latchkey import Guard, GuardRequest, LatchkeyClient, LatchkeyError, Refusal, presented_key, usage_headers
from latchkey.guard import REFUSALS
from tests.support import URL, ScriptedTransport, answer, needs_latchkey


def request(headers=None, path="/x"):
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    return GuardRequest("POST", path, lambda name: lowered.get(name.lower()))


class Fixed:
    """A verifier answering one verdict (or raising one error), recording what it was asked."""

    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def verify(self, key, **checks):
        self.asked.append((key, checks))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


LIVE = {"key_id": "k1", "owner": {"type": "user", "id": "u"}, "scopes": [], "resources": None, "expires_at": None, "enabled": True}


class PresentedKey(unittest.TestCase):
    def test_the_schemes_and_the_header(self):
        header = lambda value: (lambda name: value if name == "authorization" else None)  # noqa: E731
        self.assertEqual(presented_key(header("Bearer abc")), "abc")
        self.assertEqual(presented_key(header("api-key abc ")), "abc")
        self.assertIsNone(presented_key(header("Basic abc")))
        self.assertIsNone(presented_key(header("Bearer a b")))
        self.assertEqual(presented_key(lambda name: " abc " if name == "api-key" else None), "abc")
        self.assertIsNone(presented_key(lambda name: "  " if name == "api-key" else None))


class Decide(unittest.TestCase):
    def test_checks_are_passed_and_functions_see_the_request(self):
        verifier = Fixed({"valid": True, "code": "VALID", **LIVE})
        guard = Guard(verifier, scope="s", resource=lambda r: r.path[1:], cost=2, ip=lambda r: "10.0.0.1")
        self.assertEqual(guard.decide(request({"Api-Key": "k"}, path="/doc"))["key_id"], "k1")
        self.assertEqual(verifier.asked, [("k", {"scope": "s", "resource": "doc", "cost": 2, "ip": "10.0.0.1"})])

    def test_valid_alone_is_not_trusted(self):
        outcome = Guard(Fixed({"valid": True, "code": "INSUFFICIENT_SCOPE", **LIVE})).decide(request({"Api-Key": "k"}))
        self.assertIsInstance(outcome, Refusal)
        self.assertEqual((outcome.status, outcome.problem["verdict"]), (403, "INSUFFICIENT_SCOPE"))

    def test_an_unknown_code_is_a_401(self):
        outcome = Guard(Fixed({"valid": False, "code": "SOMETHING_NEW"})).decide(request({"Api-Key": "k"}))
        self.assertEqual((outcome.status, outcome.problem["detail"]), (401, "The API key is not valid"))
        self.assertEqual((outcome.problem["code"], outcome.problem["verdict"]), ("key_not_found", "SOMETHING_NEW"))

    def test_a_refusal_is_latchkeys_problem_with_the_verdict(self):
        outcome = Guard(Fixed({"valid": False, "code": "REVOKED", "key_id": None})).decide(request({"Api-Key": "k"}))
        self.assertEqual(
            json.loads(outcome.body()),
            {
                "type": "https://latchkey.dev/problems/key-revoked",
                "title": "API key revoked",
                "status": 401,
                "detail": "The API key has been revoked",
                "code": "key_revoked",
                "verdict": "REVOKED",
            },
        )

    def test_a_resource_beyond_the_key_is_forbidden_with_what_it_exceeded(self):
        outcome = Guard(Fixed({"valid": False, "code": "RESOURCE_NOT_ALLOWED", **LIVE})).decide(request({"Api-Key": "k"}))
        self.assertEqual(
            (outcome.status, outcome.problem["code"], outcome.problem["type"], outcome.problem["exceeded"]),
            (403, "forbidden", "https://latchkey.dev/problems/forbidden", "resources"),
        )

    def test_no_key_is_authentication_required_without_a_verdict(self):
        outcome = Guard(Fixed(None)).decide(request())
        self.assertEqual((outcome.status, outcome.problem["code"]), (401, "authentication_required"))
        self.assertEqual(outcome.problem["type"], "https://latchkey.dev/problems/authentication-required")
        self.assertNotIn("verdict", outcome.problem)

    def test_the_realm_is_named_and_cleaned(self):
        outcome = Guard(Fixed(None), realm='my "api"').decide(request())
        self.assertEqual(outcome.headers["WWW-Authenticate"], 'Bearer realm="my api", Api-Key realm="my api"')

    def test_usage_exceeded_has_no_retry_after_and_carries_the_credits(self):
        verdict = {"valid": False, "code": "USAGE_EXCEEDED", **LIVE, "credits": {"remaining": 1}}
        outcome = Guard(Fixed(verdict)).decide(request({"Api-Key": "k"}))
        self.assertEqual(outcome.status, 429)
        self.assertNotIn("Retry-After", outcome.headers)
        self.assertEqual(outcome.problem["credits"], {"remaining": 1})
        self.assertEqual(json.loads(outcome.body())["code"], "key_usage_exceeded")

    def test_failures_to_get_a_verdict(self):
        def outcome(error):
            return Guard(Fixed(error)).decide(request({"Api-Key": "k"}))

        invalid = outcome(LatchkeyError(422, {"title": "Validation failed"}))
        self.assertEqual((invalid.status, invalid.problem["title"]), (400, "Bad Request"))
        limited = outcome(LatchkeyError(429, {"title": "Too many"}, retry_after=17))
        self.assertEqual((limited.status, limited.headers["Retry-After"]), (503, "17"))
        down = outcome(LatchkeyError(0, {"title": "Network error"}))
        self.assertEqual((down.status, down.headers["Retry-After"]), (503, "5"))
        self.assertEqual(down.problem["type"], "about:blank")
        self.assertNotIn("code", down.problem)
        with self.assertRaises(LatchkeyError):
            outcome(LatchkeyError(500, {"title": "Internal error"}))


class UsageHeaders(unittest.TestCase):
    NOW = 1_800_000_000.0

    def limit(self, name, limit, remaining, reset_in):
        return {"name": name, "limit": limit, "remaining": remaining, "reset": (self.NOW + reset_in) * 1000}

    def test_the_tightest_limit_and_the_longest_wait_of_the_exhausted_ones(self):
        verdict = {
            "code": "RATE_LIMITED",
            "ratelimits": [self.limit("minute", 10, 0, 60), self.limit("second", 2, 0, 0.5), self.limit("day", 100, 50, 3600)],
        }
        self.assertEqual(
            usage_headers(verdict, self.NOW),
            {"Retry-After": "6", "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "60"},
        )

    def test_retry_after_is_at_least_a_second_and_only_when_rate_limited(self):
        limits = [self.limit("m", 1000, 0, 0.2)]
        self.assertEqual(usage_headers({"code": "RATE_LIMITED", "ratelimits": limits}, self.NOW)["Retry-After"], "1")
        self.assertNotIn("Retry-After", usage_headers({"code": "USAGE_EXCEEDED", "ratelimits": limits}, self.NOW))
        self.assertEqual(usage_headers({"code": "VALID"}, self.NOW), {})


class Client(unittest.TestCase):
    def client(self, *answers, **options):
        transport = ScriptedTransport(*answers)
        self.sent = transport.sent
        self.slept = []
        return LatchkeyClient("http://latchkey.test/", transport=transport, sleep=self.slept.append, **options)

    def test_verify_posts_the_key_and_the_checks_without_a_token(self):
        client = self.client(answer(200, {"valid": False, "code": "NOT_FOUND", "key_id": None}), token="jwt")
        client.verify("k", scope="s", cost=0)
        method, url, headers, body = self.sent[0]
        self.assertEqual((method, url), ("POST", "http://latchkey.test/v1/verify"))
        self.assertEqual(json.loads(body), {"key": "k", "scope": "s", "cost": 0})
        self.assertNotIn("Authorization", headers)

    def test_verify_sends_the_verify_token_when_given(self):
        client = self.client(answer(200, {"valid": False, "code": "NOT_FOUND", "key_id": None}), verify_token="vt")
        client.verify("k")
        self.assertEqual(self.sent[0][2]["Authorization"], "Bearer vt")

    def test_a_503_and_a_network_failure_are_retried_with_backoff(self):
        ok = answer(200, {"valid": True, "code": "VALID", **LIVE})
        client = self.client(answer(503, {"title": "Storage unavailable"}, {"retry-after": "2"}), OSError("refused"), ok)
        self.assertEqual(client.verify("k")["code"], "VALID")
        self.assertEqual(self.slept, [2, 0.5])

    def test_a_4xx_is_raised_at_once_with_its_problem(self):
        client = self.client(answer(429, {"title": "Too many", "code": "verify_rate_limited"}, {"retry-after": "9"}))
        with self.assertRaises(LatchkeyError) as raised:
            client.verify("k")
        self.assertEqual((raised.exception.status, raised.exception.retry_after), (429, 9))
        self.assertEqual(raised.exception.problem["code"], "verify_rate_limited")
        self.assertEqual(len(self.sent), 1)

    def test_giving_up_after_the_attempts_with_status_0(self):
        client = self.client(OSError("a"), OSError("b"), OSError("c"))
        with self.assertRaises(LatchkeyError) as raised:
            client.verify("k")
        self.assertEqual((raised.exception.status, raised.exception.unavailable), (0, True))
        self.assertEqual(len(self.sent), 3)

    def test_management_calls_need_the_token(self):
        with self.assertRaises(LatchkeyError) as raised:
            self.client().get("k1")
        self.assertEqual(raised.exception.status, 401)
        client = self.client(answer(200, {"id": "a/b"}), token="jwt")
        client.get("a/b")
        self.assertEqual(self.sent[0][1], "http://latchkey.test/v1/keys/a%2Fb")
        self.assertEqual(self.sent[0][2]["Authorization"], "Bearer jwt")

    def test_rotate_is_never_retried(self):
        client = self.client(answer(503, {"title": "down"}), token="jwt")
        with self.assertRaises(LatchkeyError):
            client.rotate("k1")
        self.assertEqual(len(self.sent), 1)

    def test_the_base_url_must_be_http(self):
        with self.assertRaises(ValueError):
            LatchkeyClient("ftp://latchkey.test")


if __name__ == "__main__":
    unittest.main()


class Codes(unittest.TestCase):
    @needs_latchkey
    def test_the_refusals_cover_exactly_latchkeys_verdict_codes(self):
        with urllib.request.urlopen(URL + "/openapi.json", timeout=10) as answer:
            schemas = json.load(answer)["components"]["schemas"]
        codes = set(schemas["VerifyRefusal"]["properties"]["code"]["enum"])
        codes |= set(schemas["VerifyVerdict"]["properties"]["code"]["enum"])
        self.assertEqual(set(REFUSALS) | {"VALID"}, codes)
