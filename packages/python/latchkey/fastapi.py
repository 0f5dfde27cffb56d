"""The guard as a FastAPI dependency.

    guard = RequireKey(client, scope="models:invoke")

    @app.post("/generate")
    def generate(verdict: dict = Depends(guard)): ...

A refusal raises ``KeyRefused``; ``add_problem_handler(app)`` answers it with the problem document
(``application/problem+json``). Without the handler FastAPI still answers with the refusal's status
and headers (``KeyRefused`` is an ``HTTPException``), but with its own ``{"detail": ...}`` body.
The dependency is a plain function, so FastAPI runs it in its thread pool: the HTTP call to latchkey
never blocks the event loop.
"""
from typing import Any, Dict

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from starlette.requests import Request

from .guard import Guard, GuardRequest, Refusal


class KeyRefused(HTTPException):
    """The guard refused the request; ``refusal`` holds the problem and headers to answer with."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(status_code=refusal.status, detail=refusal.problem.get("detail"), headers=refusal.headers)
        self.refusal = refusal


def problem_response(refusal: Refusal) -> Response:
    return Response(refusal.body(), status_code=refusal.status, headers=refusal.all_headers())


async def _answer(_request: Request, error: Exception) -> Response:
    assert isinstance(error, KeyRefused)
    return problem_response(error.refusal)


def add_problem_handler(app: FastAPI) -> None:
    """Answers every KeyRefused of ``app`` with its problem document."""
    app.add_exception_handler(KeyRefused, _answer)


def guard_request(request: Request) -> GuardRequest:
    client = request.client
    return GuardRequest(
        request.method,
        request.url.path,
        request.headers.get,
        params=request.path_params,
        peer=client.host if client else None,
    )


class RequireKey(Guard):
    """A FastAPI dependency resolving to the VALID verdict (a dict: ``key_id``, ``owner``, ``scopes``...)."""

    def __call__(self, request: Request) -> Dict[str, Any]:
        outcome = self.decide(guard_request(request))
        if isinstance(outcome, Refusal):
            raise KeyRefused(outcome)
        request.state.verdict = outcome
        return outcome


__all__ = ["KeyRefused", "RequireKey", "add_problem_handler", "guard_request", "problem_response"]
