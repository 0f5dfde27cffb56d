import os

from fastapi import Depends, FastAPI

from latchkey import LatchkeyClient
from latchkey.fastapi import RequireKey, add_problem_handler

keys = LatchkeyClient(os.environ["LATCHKEY_URL"], verify_cache_ttl=5)
app = FastAPI()
add_problem_handler(app)  # refusals as application/problem+json
invoke = RequireKey(keys, scope="models:invoke")


@app.post("/generate")
def generate(verdict: dict = Depends(invoke)):
    return {"key": verdict["key_id"], "owner": verdict["owner"]["id"], "scopes": verdict["scopes"]}
