"""A client for latchkey's HTTP API, standard library only (urllib).

Every call goes through ``_send``, which owns the transport policy in one place, as the TypeScript
client does: a timeout per attempt, bounded retries on 503 (honouring ``Retry-After``) and on network
failures, RFC 9457 problems turned into ``LatchkeyError``, and read-your-writes: the client keeps the
newest ``Latchkey-Bookmark`` latchkey answered with and sends it with every management call, so a read
after a write sees it even when a D1 replica serves the read (``bookmark`` reads or sets it; the
``bookmark=`` option starts from one). latchkey decides every verdict: this client only asks.
"""
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional

from .cache import VerdictCache
from .errors import LatchkeyError, synthetic_problem


class Response(NamedTuple):
    """What a transport returns: the status, the headers (names in lower case) and the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


#: ``transport(method, url, headers, body, timeout)`` -> Response. Raises OSError when no answer came.
Transport = Callable[[str, str, Dict[str, str], Optional[bytes], float], Response]


def urllib_transport(method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: float) -> Response:
    """The default transport: urllib, no proxies from the environment beyond urllib's own rules."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (http(s) only, checked)
            return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


#: The header latchkey's management API carries its D1 bookmark in (read-your-writes across requests).
BOOKMARK_HEADER = "Latchkey-Bookmark"

DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3
DEFAULT_MAX_RETRY_DELAY = 10.0
#: The wait before a retry when a 503 names none, doubled per attempt (seconds).
BACKOFF = 0.25


class LatchkeyClient:
    """latchkey at ``base_url``.

    ``token``: a JWT, or an API key with ``keys:read`` / ``keys:write``, for the management calls.
    ``verify_token``: the deployment's VERIFY_TOKEN, when it sets one (``verify`` then sends it).
    ``verify_cache_ttl``: seconds ``verify`` may reuse a verdict (0, the default, is off; at most 10).
    ``bookmark``: start from this ``Latchkey-Bookmark`` (one a response of latchkey carried, e.g. kept by
    another process): this client's reads then see everything that response saw. Default: none.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: Optional[str] = None,
        verify_token: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_ATTEMPTS,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        verify_cache_ttl: float = 0,
        verify_cache_max_entries: int = 10_000,
        transport: Optional[Transport] = None,
        sleep: Callable[[float], None] = time.sleep,
        bookmark: Optional[str] = None,
    ) -> None:
        base = str(base_url).rstrip("/")
        if not (base.startswith("http://") or base.startswith("https://")):
            raise ValueError(f'base_url must be an http(s) URL, not "{base}"')
        self._base = base
        self._token = token
        self._verify_token = verify_token
        self._timeout = timeout
        self._max_attempts = max(1, int(max_attempts))
        self._max_retry_delay = max_retry_delay
        self._transport = transport or urllib_transport
        self._sleep = sleep
        self._verdicts = VerdictCache(verify_cache_ttl, verify_cache_max_entries)
        self._bookmark = bookmark or None
        self._bookmark_lock = threading.Lock()

    @property
    def bookmark(self) -> Optional[str]:
        """The newest ``Latchkey-Bookmark`` this client received (None: none yet), sent with its next
        management call. Set it to carry read-your-writes over from elsewhere (another client, another
        process), or to None to read from the nearest replica without it."""
        return self._bookmark

    @bookmark.setter
    def bookmark(self, value: Optional[str]) -> None:
        with self._bookmark_lock:
            self._bookmark = value or None

    def _remember(self, answer: Response) -> None:
        """Keeps the answer's bookmark when it is newer than the one held (bookmarks sort oldest first)."""
        received = answer.headers.get(BOOKMARK_HEADER.lower())
        if not received:
            return
        with self._bookmark_lock:
            if self._bookmark is None or received > self._bookmark:
                self._bookmark = received

    # The management calls.

    def create(self, name: str, *, idempotency_key: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Creates a key (``scopes=``, ``expires_at=``, ``ratelimits=``, ``credits=``...). ``key`` is shown only this once."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return self._send("POST", "/v1/keys", body={"name": name, **fields}, headers=headers, auth=True)

    def list(self, **query: Any) -> Dict[str, Any]:
        """One page of the caller's keys (``limit``, ``cursor``, ``status``, ``include_revoked``...)."""
        return self._send("GET", "/v1/keys", query=query, auth=True)

    def get(self, key_id: str) -> Dict[str, Any]:
        return self._send("GET", _key_path(key_id), auth=True)

    def update(self, key_id: str, **changes: Any) -> Dict[str, Any]:
        """PATCH: fields left out are unchanged; None clears a nullable one."""
        return self._send("PATCH", _key_path(key_id), body=changes, auth=True)

    def rotate(self, key_id: str, *, grace_seconds: Optional[int] = None) -> Dict[str, Any]:
        """The new key, shown once. Not retried: a retry after a lost answer would rotate again."""
        body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
        return self._send("POST", _key_path(key_id) + "/rotate", body=body, auth=True, attempts=1)

    def revoke(self, key_id: str, *, cascade: bool = False) -> None:
        """Revokes a key (idempotent); ``cascade=True`` also revokes every key it created, and theirs."""
        self._send("DELETE", _key_path(key_id), query={"cascade": True} if cascade else {}, auth=True)

    def whoami(self) -> Dict[str, Any]:
        return self._send("GET", "/v1/whoami", auth=True)

    # Verification.

    def verify(
        self,
        key: str,
        *,
        scope: Optional[str] = None,
        resource: Optional[str] = None,
        ip: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> Dict[str, Any]:
        """latchkey's verdict on a key (check ``valid`` and ``code``); only a failure to get one raises."""
        checks: Dict[str, Any] = {}
        if scope is not None:
            checks["scope"] = scope
        if resource is not None:
            checks["resource"] = resource
        if ip is not None:
            checks["ip"] = ip
        if cost is not None:
            checks["cost"] = cost
        entry = VerdictCache.entry_for(key, checks) if self._verdicts.enabled else None
        if entry is not None:
            cached = self._verdicts.get(entry)
            if cached is not None:
                return cached
        headers = {} if self._verify_token is None else {"Authorization": f"Bearer {self._verify_token}"}
        verdict = self._send("POST", "/v1/verify", body={"key": key, **checks}, headers=headers, auth=False)
        if entry is not None:
            self._verdicts.set(entry, verdict)
        return verdict

    # The transport policy.

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Dict[str, Any]] = None,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
        auth: bool,
        attempts: Optional[int] = None,
    ) -> Any:
        url = self._base + path
        pairs = [(name, _query_value(value)) for name, value in (query or {}).items() if value is not None]
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        sent = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            sent["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        if auth:
            if not self._token:
                raise LatchkeyError(401, synthetic_problem(401, "Unauthorized", "This call needs a token"))
            sent["Authorization"] = f"Bearer {self._token}"
            if self._bookmark is not None:
                sent[BOOKMARK_HEADER] = self._bookmark
        most = self._max_attempts if attempts is None else attempts
        attempt = 1
        while True:
            failure = self._attempt(method, url, sent, data)
            if not isinstance(failure, LatchkeyError):
                return failure
            if not failure.unavailable:
                raise failure
            delay = failure.retry_after if failure.retry_after is not None else BACKOFF * 2 ** (attempt - 1)
            if attempt >= most or delay > self._max_retry_delay:
                raise failure
            self._sleep(delay)
            attempt += 1

    def _attempt(self, method: str, url: str, headers: Dict[str, str], data: Optional[bytes]) -> Any:
        """The parsed answer of one request, or the LatchkeyError it means (status 0 without an answer)."""
        try:
            answer = self._transport(method, url, headers, data, self._timeout)
        except (socket.timeout, TimeoutError):
            return LatchkeyError(0, synthetic_problem(0, "Timeout", f"No answer within {self._timeout:g} s"))
        except (OSError, urllib.error.URLError) as error:
            return LatchkeyError(0, synthetic_problem(0, "Network error", str(getattr(error, "reason", error))))
        self._remember(answer)
        if 200 <= answer.status < 300:
            return None if answer.status == 204 or not answer.body else json.loads(answer.body)
        return _problem_error(answer)


def _key_path(key_id: str) -> str:
    return "/v1/keys/" + urllib.parse.quote(key_id, safe="")


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _problem_error(answer: Response) -> LatchkeyError:
    problem: Optional[Dict[str, Any]] = None
    kind = answer.headers.get("content-type", "")
    if kind.lower().startswith(("application/json", "application/problem+json")):
        try:
            parsed = json.loads(answer.body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            problem = parsed
    if problem is None:
        problem = synthetic_problem(answer.status, f"HTTP {answer.status}")
    return LatchkeyError(answer.status, problem, retry_after_seconds(answer.headers.get("retry-after")))


def retry_after_seconds(value: Optional[str]) -> Optional[int]:
    """``Retry-After`` as seconds: a delay or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0, int(-(-(moment.timestamp() - time.time()) // 1)))

