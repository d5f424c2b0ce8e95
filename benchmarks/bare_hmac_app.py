"""The baseline for webhook ingestion: a bare Flask endpoint (werkzeug, threaded) that only
checks GitHub's ``X-Hub-Signature-256`` HMAC and answers 202. Run as
``python -m benchmarks.bare_hmac_app PORT`` with ``BENCH_WEBHOOK_SECRET`` set."""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

from flask import Flask, request

app = Flask(__name__)
SECRET = os.environ.get("BENCH_WEBHOOK_SECRET", "").encode()


@app.get("/healthz")
def healthz():
    return "ok"


@app.post("/webhook-github/")
def webhook():
    body = request.get_data()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return "", 401
    return "", 202


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
