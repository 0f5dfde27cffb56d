"""The guard every adapter shares: read the key, ask latchkey, and let the request in or refuse it.

The same answers as the TypeScript guard (``requireKey``), as RFC 9457 problems:

- 401 (with ``WWW-Authenticate``) when no key was sent, or it is malformed, unknown, revoked,
  disabled or expired, or its IP allow-list does not hold the client's address;
- 403 when the key is good but lacks the scope or the resource;
- 429 when the key is over one of its rate limits (RATE_LIMITED) or its credits do not cover the
  request's cost (USAGE_EXCEEDED), with ``Retry-After`` when waiting helps and ``RateLimit-Limit``,
  ``-Remaining`` and ``-Reset`` of its tightest rate limit;
- 400 when latchkey does not accept the resource id or the cost the request names;
- 503 (with ``Retry-After``) when latchkey cannot give a verdict right now, or limits this server.

The problem's ``code`` is the one latchkey's own routes answer for the verdict (``key_revoked`` for
REVOKED: ``REFUSALS``), with its ``type`` URI and title, and the verdict itself is in ``verdict``; a
request without a key gets ``authentication_required``. Only a VALID verdict ever reaches a handler.
The framework adapters (``latchkey.fastapi``, ``latchkey.starlette``, ``latchkey.flask``) only
translate requests and responses.
"""
import json
import math
import re
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from .errors import LatchkeyError

Verdict = Dict[str, Any]

#: The base of every problem ``type`` URI: ``key_revoked`` -> ``https://latchkey.dev/problems/key-revoked``.
PROBLEM_TYPE_BASE = "https://latchkey.dev/problems/"

#: The titles of the guard's own problems (no verdict behind them: the request or latchkey failed).
TITLES = {
    400: "Bad Request",
    503: "Service Unavailable",
}

#: Each refusing verdict's status, latchkey's problem code and title for it, and what it tells the key's
#: holder: 401 when the key is no good, 403 when it is not enough, 429 when it is spent.
REFUSALS = {
    "MALFORMED": (401, "key_malformed", "Malformed API key", "The API key is malformed"),
    "NOT_FOUND": (401, "key_not_found", "Unknown API key", "The API key is not valid"),
    "REVOKED": (401, "key_revoked", "API key revoked", "The API key has been revoked"),
    "EXPIRED": (401, "key_expired", "API key expired", "The API key has expired"),
    "DISABLED": (401, "key_disabled", "API key disabled", "The API key is disabled"),
    "IP_NOT_ALLOWED": (401, "key_ip_not_allowed", "Address not allowed", "The API key may not be used from this address"),
    "INSUFFICIENT_SCOPE": (403, "insufficient_scope", "Insufficient scope", "The API key lacks the scope this route needs"),
    "RESOURCE_NOT_ALLOWED": (403, "forbidden", "Forbidden", "The API key may not use this resource"),
    "RATE_LIMITED": (429, "key_rate_limited", "API key rate limited", "The API key is over its rate limit"),
    "USAGE_EXCEEDED": (429, "key_usage_exceeded", "API key out of credits", "The API key's credits do not cover this request"),
}

#: The problem for a request that sent no key at all.
NO_KEY = (401, "authentication_required", "Authentication required", "Send an API key as `Authorization: Bearer <key>` or `Api-Key: <key>`")

#: What a 403 exceeded, as latchkey's own 403s name it.
EXCEEDED = {
    "INSUFFICIENT_SCOPE": "scopes",
    "RESOURCE_NOT_ALLOWED": "resources",
}

UNAVAILABLE_RETRY_AFTER_SECONDS = 5
_PRESENTED = re.compile(r"^(?:Bearer|Api-Key) +(\S+) *$", re.IGNORECASE)


class GuardRequest:
    """The request as the guard's options see it, the same in every framework.

    ``path`` is the request's path (no scheme, host or query), ``params`` the path parameters the
    router found (none in a middleware, which runs before routing), ``peer`` the socket's remote
    address (a proxy's, behind one) and ``header(name)`` a header's value or None.
    """

    __slots__ = ("method", "path", "params", "peer", "_header")

    def __init__(
        self,
        method: str,
        path: str,
        header: Callable[[str], Optional[str]],
        params: Optional[Mapping[str, Any]] = None,
        peer: Optional[str] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.params = dict(params or {})
        self.peer = peer
        self._header = header

    def header(self, name: str) -> Optional[str]:
        return self._header(name)


class Refusal:
    """A refused request: the status, the problem document and the headers to answer with."""

    __slots__ = ("status", "problem", "headers")

    def __init__(self, status: int, problem: Dict[str, Any], headers: Dict[str, str]) -> None:
        self.status = status
        self.problem = problem
        self.headers = headers

    def body(self) -> bytes:
        return json.dumps(self.problem, separators=(",", ":")).encode("utf-8")

    def all_headers(self) -> Dict[str, str]:
        """The response headers, ``Content-Type: application/problem+json`` first."""
        return {"Content-Type": "application/problem+json", **self.headers}


def presented_key(header: Callable[[str], Optional[str]]) -> Optional[str]:
    """The key from ``Authorization: Bearer <key>``, ``Authorization: Api-Key <key>`` or an ``Api-Key`` header."""
    authorization = header("authorization")
    if authorization is not None:
        match = _PRESENTED.match(authorization)
        return match.group(1) if match else None
    value = (header("api-key") or "").strip()
    return value or None


Option = Union[None, Any, Callable[[GuardRequest], Any]]


class Guard:
    """Lets in only requests whose key holds ``scope`` (and ``resource``).

    ``verifier``: a ``LatchkeyClient`` (or anything with its ``verify``). ``resource`` and ``cost``
    are fixed values or functions of the ``GuardRequest``. ``ip``: a function giving the client's
    address, checked against a key's allow-list; by default none is sent (a key with an allow-list
    then fails), as headers a client could forge are no address: pass your proxy's trusted one.
    """

    def __init__(
        self,
        verifier: Any,
        *,
        scope: Optional[str] = None,
        resource: Option = None,
        cost: Option = None,
        ip: Optional[Callable[[GuardRequest], Optional[str]]] = None,
        realm: str = "api",
    ) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise TypeError("Guard needs a verifier with a verify(key, ...) method, e.g. a LatchkeyClient")
        self.verifier = verifier
        self.scope = scope
        self.resource = resource
        self.cost = cost
        self.ip = ip
        self.realm = re.sub(r'["\\]', "", realm)

    def decide(self, request: GuardRequest) -> Union[Verdict, Refusal]:
        """The VALID verdict to hand the handler, or the Refusal to answer with."""
        key = presented_key(request.header)
        if key is None:
            status, code, title, detail = NO_KEY
            return refusal(status, detail, self.realm, (code, title))
        checks: Dict[str, Any] = {}
        if self.scope is not None:
            checks["scope"] = self.scope
        resource = self.resource(request) if callable(self.resource) else self.resource
        if resource is not None:
            checks["resource"] = resource
        cost = self.cost(request) if callable(self.cost) else self.cost
        if cost is not None:
            checks["cost"] = cost
        ip = self.ip(request) if self.ip is not None else None
        if ip is not None:
            checks["ip"] = ip
        try:
            verdict = self.verifier.verify(key, **checks)
        except LatchkeyError as error:
            return failed_verification(error)
        # Only a live key's VALID verdict lets the request in: `valid` alone is not trusted.
        if verdict.get("valid") is True and verdict.get("code") == "VALID":
            return verdict
        code = verdict.get("code")
        known = code if code in REFUSALS else "NOT_FOUND"
        status, problem_code, title, detail = REFUSALS[known]
        refused = refusal(status, detail, self.realm, (problem_code, title))
        if code is not None:
            refused.problem["verdict"] = code
        if known in EXCEEDED:
            refused.problem["exceeded"] = EXCEEDED[known]
        if status == 429 and "owner" in verdict:
            refused.headers.update(usage_headers(verdict))
            # As latchkey's own 429 does: the key's credits and rate limits after the refused request.
            if "credits" in verdict:
                refused.problem["credits"] = verdict["credits"]
            if "ratelimits" in verdict:
                refused.problem["ratelimits"] = verdict["ratelimits"]
        return refused


def usage_headers(verdict: Verdict, now: Optional[float] = None) -> Dict[str, str]:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (seconds) of the tightest rate limit, and for a
    RATE_LIMITED verdict ``Retry-After``: the seconds until every exhausted limit has a request again
    (bounded from above: a limit refills ``limit`` requests by ``reset``). ``now`` is epoch seconds."""
    now_ms = (time.time() if now is None else now) * 1000
    headers: Dict[str, str] = {}
    limits = verdict.get("ratelimits") or []

    def until_ms(limit: Dict[str, Any]) -> float:
        return max(0.0, limit["reset"] - now_ms)

    if verdict.get("code") == "RATE_LIMITED":
        waits = [until_ms(limit) / limit["limit"] for limit in limits if limit["remaining"] < 1]
        if waits:
            headers["Retry-After"] = str(max(1, math.ceil(max(waits) / 1000)))
    if limits:
        tightest = min(limits, key=lambda limit: limit["remaining"])
        headers["RateLimit-Limit"] = str(tightest["limit"])
        headers["RateLimit-Remaining"] = str(tightest["remaining"])
        headers["RateLimit-Reset"] = str(math.ceil(until_ms(tightest) / 1000))
    return headers


def problem_type(code: str) -> str:
    """The ``type`` URI of a problem code, as latchkey's own problems carry it."""
    return PROBLEM_TYPE_BASE + code.replace("_", "-")


def refusal(
    status: int,
    detail: str,
    realm: str,
    kind: Optional[Tuple[str, str]] = None,
    retry_after: int = UNAVAILABLE_RETRY_AFTER_SECONDS,
) -> Refusal:
    """A refusal: latchkey's problem ``kind`` (its code and title) when there is one, else a plain one
    (``about:blank``, the status's title)."""
    if kind is None:
        problem: Dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    else:
        code, title = kind
        problem = {"type": problem_type(code), "title": title, "status": status, "detail": detail, "code": code}
    headers: Dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="{realm}", Api-Key realm="{realm}"'
    if status == 503:
        headers["Retry-After"] = str(retry_after)
    return Refusal(status, problem, headers)


def failed_verification(error: LatchkeyError) -> Refusal:
    """latchkey refused the request's resource id or cost (400), limits this server's verifications
    (429: a 503 with latchkey's Retry-After), or could not answer (503). Anything else is raised."""
    if error.status in (400, 422):
        return refusal(400, "The request names a resource id or a cost latchkey does not accept", "")
    if error.status == 429:
        wait = error.retry_after if error.retry_after is not None else UNAVAILABLE_RETRY_AFTER_SECONDS
        return refusal(503, "Key verification is limited right now; retry shortly", "", None, wait)
    if error.unavailable:
        return refusal(503, "Key verification is unavailable; retry shortly", "")
    raise error
