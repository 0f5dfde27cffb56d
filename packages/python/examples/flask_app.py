import os

from flask import Flask, g

from latchkey import LatchkeyClient
from latchkey.flask import require_key

keys = LatchkeyClient(os.environ["LATCHKEY_URL"], verify_cache_ttl=5)
app = Flask(__name__)


@app.post("/generate")
@require_key(keys, scope="models:invoke")
def generate():
    return {"key": g.verdict["key_id"], "owner": g.verdict["owner"]["id"], "scopes": g.verdict["scopes"]}
