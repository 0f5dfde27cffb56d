"""The verify cache: the TypeScript client's rules, against latchkey and with a stub transport."""
import hashlib
import json
import subprocess
import sys
import unittest

from latchkey import LatchkeyClient, Response, VerdictCache
from tests.support import KEY, KEY_LIMITED, KEY_REVOKED, PACKAGE, counting_client, needs_latchkey


@needs_latchkey
class AgainstLatchkey(unittest.TestCase):
    def test_a_second_verify_of_a_valid_unlimited_key_within_the_ttl_makes_no_http_call(self):
        client, transport = counting_client(verify_cache_ttl=5)
        first = client.verify(KEY, scope="models:invoke")
        second = client.verify(KEY, scope="models:invoke")
        self.assertEqual(first["code"], "VALID")
        self.assertEqual(second, first)
        self.assertEqual(len(transport.calls), 1)
        # Other checks are another entry.
        client.verify(KEY, scope="billing:read")
        self.assertEqual(len(transport.calls), 2)

    def test_a_limited_keys_verdict_is_never_cached(self):
        client, transport = counting_client(verify_cache_ttl=10)
        first = client.verify(KEY_LIMITED, scope="models:invoke")
        second = client.verify(KEY_LIMITED, scope="models:invoke")
        self.assertEqual(first["code"], "VALID")
        self.assertEqual(second["ratelimits"][0]["remaining"], first["ratelimits"][0]["remaining"] - 1)
        self.assertEqual(len(transport.calls), 2, "each verification of a limited key reaches latchkey")

    def test_a_revoked_verdict_is_cached(self):
        client, transport = counting_client(verify_cache_ttl=5)
        self.assertEqual(client.verify(KEY_REVOKED)["code"], "REVOKED")
        self.assertEqual(client.verify(KEY_REVOKED)["code"], "REVOKED")
        self.assertEqual(len(transport.calls), 1)

    def test_the_cache_is_off_by_default(self):
        client, transport = counting_client()
        client.verify(KEY)
        client.verify(KEY)
        self.assertEqual(len(transport.calls), 2)


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def valid(**extra):
    verdict = {
        "valid": True,
        "code": "VALID",
        "key_id": "key_1",
        "owner": {"type": "user", "id": "alice"},
        "scopes": ["models:invoke"],
        "resources": None,
        "expires_at": None,
        "enabled": True,
    }
    verdict.update(extra)
    return verdict


class Rules(unittest.TestCase):
    def cache(self, ttl=5.0, entries=100):
        self.clock = Clock()
        return VerdictCache(ttl, entries, self.clock)

    def test_the_ttl_is_bounded_by_latchkeys_revocation_bound(self):
        for bad in (-1, 10.5, float("nan"), "5", True):
            with self.assertRaises(ValueError):
                VerdictCache(bad, 10)
        VerdictCache(10, 10)
        with self.assertRaises(ValueError):
            VerdictCache(5, 0)

    def test_valid_lives_for_the_ttl(self):
        cache = self.cache()
        cache.set("e", valid())
        self.clock.now += 4.9
        self.assertEqual(cache.get("e"), valid())
        self.clock.now += 0.1
        self.assertIsNone(cache.get("e"))

    def test_valid_never_outlives_the_keys_expiry(self):
        cache = self.cache()
        cache.set("e", valid(expires_at="2027-01-15T08:00:02.000Z"))  # 1_800_000_002
        self.clock.now += 1.9
        self.assertIsNotNone(cache.get("e"))
        self.clock.now += 0.1
        self.assertIsNone(cache.get("e"))
        cache.set("past", valid(expires_at="2027-01-15T08:00:00Z"))
        self.assertIsNone(cache.get("past"))
        cache.set("unreadable", valid(expires_at="soon"))
        self.assertIsNone(cache.get("unreadable"))

    def test_only_final_verdicts_are_cached(self):
        cache = self.cache()
        for code in ("REVOKED", "EXPIRED", "MALFORMED"):
            cache.set(code, {"valid": False, "code": code, "key_id": None})
            self.assertEqual(cache.get(code)["code"], code)
        for code in ("NOT_FOUND", "DISABLED", "IP_NOT_ALLOWED"):
            cache.set(code, {"valid": False, "code": code, "key_id": None})
            self.assertIsNone(cache.get(code), code)
        for code in ("INSUFFICIENT_SCOPE", "RESOURCE_NOT_ALLOWED", "RATE_LIMITED", "USAGE_EXCEEDED"):
            cache.set(code, valid(valid=False, code=code))
            self.assertIsNone(cache.get(code), code)

    def test_a_verdict_with_limits_is_never_cached(self):
        cache = self.cache()
        cache.set("credits", valid(credits={"remaining": 5}))
        cache.set("ratelimits", valid(ratelimits=[{"name": "m", "limit": 5, "remaining": 4, "reset": 0}]))
        self.assertIsNone(cache.get("credits"))
        self.assertIsNone(cache.get("ratelimits"))

    def test_the_oldest_entry_goes_first_and_hits_are_copies(self):
        cache = self.cache(entries=2)
        for name in ("a", "b", "c"):
            cache.set(name, valid(key_id=name))
        self.assertIsNone(cache.get("a"))
        hit = cache.get("b")
        hit["scopes"].append("admin")
        self.assertEqual(cache.get("b")["scopes"], ["models:invoke"])

    def test_entries_are_named_by_a_digest_never_by_the_key(self):
        entry = VerdictCache.entry_for("lk_secret", {"scope": "s"})
        self.assertRegex(entry, r"^[0-9a-f]{64}$")
        self.assertNotEqual(entry, VerdictCache.entry_for("lk_secret", {"scope": "t"}))
        self.assertNotEqual(entry, VerdictCache.entry_for("lk_secret", {"scope": "s", "ip": "10.0.0.1"}))
        # The same digest as the TypeScript client's: SHA-256 of JSON [key, scope, resource, ip].
        self.assertEqual(VerdictCache.entry_for("k", {}), hashlib.sha256(b'["k",null,null,null]').hexdigest())

    def test_the_client_never_keeps_the_key(self):
        answers = iter([Response(200, {"content-type": "application/json"}, json.dumps(valid()).encode())])
        client = LatchkeyClient("http://latchkey.test", verify_cache_ttl=5, transport=lambda *a: next(answers))
        client.verify("lk_plaintext_secret")
        self.assertNotIn("lk_plaintext_secret", repr(client._verdicts._entries))


class StandardLibraryOnly(unittest.TestCase):
    def test_the_core_imports_without_any_framework(self):
        script = (
            "import sys\n"
            "for name in ('fastapi', 'starlette', 'flask', 'werkzeug', 'httpx'): sys.modules[name] = None\n"
            "import latchkey, latchkey.guard, latchkey.client, latchkey.cache\n"
            "print('ok')\n"
        )
        run = subprocess.run([sys.executable, "-c", script], cwd=PACKAGE, capture_output=True, text=True)
        self.assertEqual(run.stdout.strip(), "ok", run.stderr)


if __name__ == "__main__":
    unittest.main()
