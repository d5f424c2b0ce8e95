"""The baseline for webhook ingestion: an endpoint that only checks GitHub's
``X-Hub-Signature-256`` HMAC and answers 202 (``GET`` answers ``ok``, for health checks).

* ``python -m benchmarks.bare_hmac_app PORT`` — a bare Flask app (werkzeug, threaded), the
  baseline of the local all-in-one stack (``webhooks`` part);
* ``python -m benchmarks.bare_hmac_app PORT --functions-framework`` — the same check as a
  functions-framework HTTP function (:func:`serve`) served by functions-framework's own
  gunicorn with its default settings, exactly as :mod:`keyway.fnserve` serves
  ``webhook-github`` (``webhooks_deployed`` part).

``BENCH_WEBHOOK_SECRET`` holds the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

from flask import Flask, request

app = Flask(__name__)
SECRET = os.environ.get("BENCH_WEBHOOK_SECRET", "").encode()


def check(body: bytes, signature: str) -> tuple[str, int]:
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return ("", 202) if hmac.compare_digest(expected, signature) else ("", 401)


@app.get("/healthz")
def healthz():
    return "ok"


@app.post("/webhook-github/")
def webhook():
    return check(request.get_data(), request.headers.get("X-Hub-Signature-256", ""))


def serve(req):
    """The functions-framework HTTP function: ``GET`` → ok, ``POST`` → the HMAC check."""
    if req.method != "POST":
        return "ok"
    return check(req.get_data(), req.headers.get("X-Hub-Signature-256", ""))


def main(argv: list[str]) -> int:
    port = int(argv[0])
    if "--functions-framework" not in argv[1:]:
        app.run(host="127.0.0.1", port=port, threaded=True)
        return 0
    import functions_framework
    from functions_framework._http import create_server

    ff_app = functions_framework.create_app("serve", __file__, "http")
    create_server(ff_app, False).run("127.0.0.1", port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
