"""The guard as a Flask view decorator.

    @app.post("/generate")
    @require_key(client, scope="models:invoke")
    def generate():
        verdict = g.verdict

A refused request gets the problem document (``application/problem+json``); a VALID verdict is
``flask.g.verdict`` for the view. ``resource`` and ``cost`` functions see the view's arguments as
``params``.
"""
import functools
from typing import Any, Callable, Optional, TypeVar

from flask import Response, g, request

from .guard import Guard, GuardRequest, Refusal

F = TypeVar("F", bound=Callable[..., Any])


def guard_request() -> GuardRequest:
    return GuardRequest(
        request.method,
        request.path,
        request.headers.get,
        params=request.view_args or {},
        peer=request.remote_addr,
    )


def problem_response(refusal: Refusal) -> Response:
    response = Response(refusal.body(), status=refusal.status, content_type="application/problem+json")
    for name, value in refusal.headers.items():
        response.headers[name] = value
    return response


def require_key(verifier: Any = None, *, guard: Optional[Guard] = None, **options: Any) -> Callable[[F], F]:
    """A decorator letting the view run only with a VALID verdict (the keyword options are the Guard's)."""
    if (guard is None) == (verifier is None):
        raise TypeError("require_key needs exactly one of `verifier` and `guard`")
    checker = guard if guard is not None else Guard(verifier, **options)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            outcome = checker.decide(guard_request())
            if isinstance(outcome, Refusal):
                return problem_response(outcome)
            g.verdict = outcome
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


__all__ = ["guard_request", "problem_response", "require_key"]
