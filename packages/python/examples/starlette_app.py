import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from latchkey import LatchkeyClient
from latchkey.starlette import KeyMiddleware

keys = LatchkeyClient(os.environ["LATCHKEY_URL"], verify_cache_ttl=5)


async def generate(request):
    verdict = request.state.verdict
    return JSONResponse({"key": verdict["key_id"], "owner": verdict["owner"]["id"], "scopes": verdict["scopes"]})


app = Starlette(
    routes=[Route("/generate", generate, methods=["POST"])],
    middleware=[Middleware(KeyMiddleware, verifier=keys, scope="models:invoke")],
)
