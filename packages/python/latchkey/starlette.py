"""The guard as ASGI middleware for Starlette (and any ASGI app).

    app = Starlette(routes=..., middleware=[Middleware(KeyMiddleware, verifier=client, scope="models:invoke")])

Every HTTP request and WebSocket handshake passing through it is checked before routing (so
``resource`` and ``cost`` functions see no path parameters; use the FastAPI dependency for those);
lifespan events pass untouched. A refused HTTP request gets the problem document; a refused
WebSocket is closed before it is accepted (code 1008, the server answers 403). The VALID verdict is
``request.state.verdict`` (``scope["state"]["verdict"]``). latchkey is asked in a worker thread, so
the event loop never waits on it.
"""
from typing import Any, Dict, Optional

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from .guard import Guard, GuardRequest, Refusal


def guard_request(scope: Dict[str, Any]) -> GuardRequest:
    headers = Headers(scope=scope)
    client = scope.get("client")
    return GuardRequest(
        scope.get("method", "GET"),
        scope.get("path", "/"),
        headers.get,
        params=scope.get("path_params"),
        peer=client[0] if client else None,
    )


class KeyMiddleware:
    """Pure ASGI middleware: the keyword options are the Guard's (``verifier``, ``scope``, ``resource``...)."""

    def __init__(self, app: Any, verifier: Any = None, *, guard: Optional[Guard] = None, **options: Any) -> None:
        if (guard is None) == (verifier is None):
            raise TypeError("KeyMiddleware needs exactly one of `verifier` and `guard`")
        self.app = app
        self.guard = guard if guard is not None else Guard(verifier, **options)

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        outcome = await run_in_threadpool(self.guard.decide, guard_request(scope))
        if isinstance(outcome, Refusal):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in outcome.all_headers().items()]
            body = outcome.body()
            headers.append((b"content-length", str(len(body)).encode("latin-1")))
            await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["verdict"] = outcome
        await self.app(scope, receive, send)


__all__ = ["KeyMiddleware", "guard_request"]
