"""The verify cache: verdicts remembered in memory for a few seconds (off by default).

The same rules as the TypeScript client's: the TTL is at most 10 s, latchkey's revocation bound, so
the cache can at most double the window in which a revoked key still passes. Cached: VALID (never
past the key's ``expires_at``) and the final refusals REVOKED, EXPIRED and MALFORMED. Never cached:
NOT_FOUND, INSUFFICIENT_SCOPE, RESOURCE_NOT_ALLOWED, IP_NOT_ALLOWED, DISABLED, RATE_LIMITED,
USAGE_EXCEEDED, errors, and any verdict of a key with limits (it carries ``credits`` or
``ratelimits``), VALID included: latchkey must count every verification of such a key. Entries are
named by the SHA-256 of the key and the checks, so the cache holds no key.
"""
import copy
import hashlib
import json
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable, Dict, Optional, Tuple

#: latchkey's revocation bound, in seconds: the longest a cached verdict may live.
VERIFY_CACHE_MAX_TTL = 10.0

_FINAL = frozenset(("VALID", "REVOKED", "EXPIRED", "MALFORMED"))


def _has_limits(verdict: Dict[str, Any]) -> bool:
    # A key whose owner has per-customer limits carries "owner_limits": it is metered too.
    return "credits" in verdict or "ratelimits" in verdict or "owner_limits" in verdict


def _epoch_seconds(stamp: Any) -> Optional[float]:
    """An RFC 3339 time as epoch seconds; None when it cannot be read."""
    if not isinstance(stamp, str):
        return None
    text = stamp.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.9's fromisoformat takes 0, 3 or 6 fraction digits only.
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = head + "." + (digits + "000000")[:6] + rest[len(digits):]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


class VerdictCache:
    def __init__(self, ttl: float, max_entries: int, now: Callable[[], float] = time.time) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 <= ttl <= VERIFY_CACHE_MAX_TTL:
            raise ValueError(
                f"verify_cache_ttl must be 0 to {VERIFY_CACHE_MAX_TTL:g} seconds (latchkey's revocation bound), not {ttl!r}"
            )
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"verify_cache_max_entries must be a positive integer, not {max_entries!r}")
        self._ttl = float(ttl)
        self._max = max_entries
        self._now = now
        self._entries: "OrderedDict[str, Tuple[Dict[str, Any], float]]" = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @staticmethod
    def entry_for(key: str, checks: Dict[str, Any]) -> str:
        """The entry's name: the SHA-256 of the key and the checks asked for (never the key itself)."""
        material = json.dumps(
            [key, checks.get("scope"), checks.get("resource"), checks.get("ip")],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def get(self, entry: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            hit = self._entries.get(entry)
            if hit is None:
                return None
            verdict, until = hit
            if until <= self._now():
                del self._entries[entry]
                return None
            return copy.deepcopy(verdict)

    def set(self, entry: str, verdict: Dict[str, Any]) -> None:
        if verdict.get("code") not in _FINAL or _has_limits(verdict):
            return
        now = self._now()
        until = now + self._ttl
        if verdict.get("code") == "VALID" and verdict.get("expires_at") is not None:
            expires = _epoch_seconds(verdict.get("expires_at"))
            if expires is None:
                return
            until = min(until, expires)
        if not until > now:
            return
        with self._lock:
            self._entries.pop(entry, None)
            self._entries[entry] = (copy.deepcopy(verdict), until)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
