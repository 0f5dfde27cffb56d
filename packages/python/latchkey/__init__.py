"""latchkey for Python: a client for latchkey's HTTP API and a route guard for FastAPI, Starlette
and Flask (``latchkey.fastapi``, ``latchkey.starlette``, ``latchkey.flask``). Standard library only;
each framework is imported by its adapter alone."""
from .cache import VERIFY_CACHE_MAX_TTL, VerdictCache
from .client import BOOKMARK_HEADER, LatchkeyClient, Response, Transport, urllib_transport
from .errors import LatchkeyError
from .guard import Guard, GuardRequest, Refusal, presented_key, usage_headers

__all__ = [
    "BOOKMARK_HEADER",
    "VERIFY_CACHE_MAX_TTL",
    "Guard",
    "GuardRequest",
    "LatchkeyClient",
    "LatchkeyError",
    "Refusal",
    "Response",
    "Transport",
    "VerdictCache",
    "presented_key",
    "urllib_transport",
    "usage_headers",
]
__version__ = "0.1.0"
