"""The api's input discipline (``shared.api.body``): a body cap (413, also for chunked and
short bodies), strict JSON objects (400 naming an unknown field, 400 for any parse failure or
nesting too deep, never a 500), 415 for a non-JSON body, 414 for a long URI, and every error
— 404, 405 with ``Allow``, 413, 414, 415 — as ``application/problem+json``. Nothing is stored
or published for a refused request."""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from keyway import wsgi
from shared import bootstrap
from shared.config import Config
from shared.errors import ConfigError
from shared.http import PROBLEM_JSON

TENANT = "t-input"
ACTION = {"connection": "conn-1", "kind": "comment", "body": "hi", "action_id": "in-1",
          "target": {"repository": "r", "parent_kind": "issue", "number": 1}}


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data()
    assert response.mimetype == PROBLEM_JSON
    body = json.loads(response.get_data())
    assert body["status"] == status and body["code"] == code and body["type"] == "about:blank"
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def _post(stack, path: str, data: bytes, content_type: str = "application/json",
          role: str = "admin"):
    token = stack.token(TENANT, "admin-1", role)
    return stack.call("POST", path, token, data=data, content_type=content_type)


def _nothing_stored(stack) -> None:
    assert stack.ports.business.query("actions") == []
    assert stack.ports.business.query("connections") == []


def test_a_body_over_the_cap_is_a_413_before_it_is_parsed(local_stack):
    big = json.dumps({**ACTION, "body": "x" * (2 * 1024 * 1024)}).encode()
    _problem(_post(local_stack, "/api/v1/actions", big), 413, "api.too_large")
    fifty = b'{"provider": "github", "pad": "' + b"a" * (50 * 1024 * 1024) + b'"}'
    _problem(_post(local_stack, "/api/v1/connections", fifty), 413, "api.too_large")
    _nothing_stored(local_stack)


def test_the_body_cap_is_configurable(local_stack, monkeypatch):
    monkeypatch.setenv("KEYWAY_API_MAX_BODY_BYTES", "2048")
    bootstrap.config.cache_clear()
    padded = json.dumps({"provider": "github", "base_url": "h" * 3000}).encode()
    _problem(_post(local_stack, "/api/v1/connections", padded), 413, "api.too_large")
    with pytest.raises(ConfigError, match="KEYWAY_API_MAX_BODY_BYTES"):
        Config.from_env({"KEYWAY_API_MAX_BODY_BYTES": "12"})
    assert Config.from_env({}).api_max_body_bytes == 1024 * 1024


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/connections", {"provider": "github", "tenant": "someone-else"}, "tenant"),
    ("/api/v1/identities", {"provider": "github", "scopes": ["repo"]}, "scopes"),
    ("/api/v1/actions", {**ACTION, "user": "admin-2"}, "user"),
    ("/api/v1/connections/conn-1/sync", {"force": True}, "force"),
])
def test_an_unknown_field_is_a_400_naming_it(local_stack, path, body, field):
    problem = _problem(_post(local_stack, path, json.dumps(body).encode()), 400,
                       "input.unknown_field")
    assert field in problem["detail"]
    _nothing_stored(local_stack)


@pytest.mark.parametrize("raw, code", [
    (b"[" * 200_000, "input.too_deep"),
    (b'{"provider": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "input.too_deep"),
    (b'{"provider": "github"', "input.invalid_json"),
    (b'{"provider": NaN}', "input.invalid_json"),
    (b'{"provider": "\xff"}', "input.invalid_json"),
    (b"", "input.invalid"),
    (b'["github"]', "input.invalid"),
])
def test_every_parse_failure_is_a_400_problem_never_a_500(local_stack, raw, code):
    _problem(_post(local_stack, "/api/v1/connections", raw), 400, code)
    _nothing_stored(local_stack)


def test_a_body_that_is_not_json_is_a_415(local_stack):
    raw = json.dumps({"provider": "github"}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        _problem(_post(local_stack, "/api/v1/connections", raw, content_type), 415,
                 "api.unsupported_media_type")
    _nothing_stored(local_stack)


def test_a_405_is_problem_json_naming_the_allowed_methods(local_stack):
    token = local_stack.token(TENANT, "admin-1", "admin")
    response = local_stack.call("PUT", "/api/v1/connections", token)
    _problem(response, 405, "api.method_not_allowed")
    assert response.headers["Allow"] == "GET, POST"
    response = local_stack.call("PATCH", "/api/v1/actions/a-1", token)
    assert response.headers["Allow"] == "GET"


def test_every_404_is_problem_json(local_stack):
    token = local_stack.token(TENANT, "admin-1", "admin")
    for path in ("/api/v1/nothing-here", "/api/robots.txt", "/api/favicon.ico"):
        _problem(local_stack.call("GET", path, token), 404, "not_found")


def test_a_long_uri_is_a_414_problem(local_stack):
    token = local_stack.token(TENANT, "admin-1", "admin")
    response = local_stack.call("GET", "/api/v1/issues?state=" + "o" * 9000, token)
    _problem(response, 414, "api.uri_too_long")


# ---- over a real socket: chunked bodies and bodies shorter than declared ------------------
class _Wire:
    """What the HTTP server answered, as (status, content type, body)."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.mimetype = response.headers.get("Content-Type", "").split(";")[0]
        self._data = response.content

    def get_data(self, as_text: bool = False):
        return self._data.decode() if as_text else self._data


def test_a_chunked_body_over_the_cap_is_a_413(served):
    token = served.token(TENANT, "admin-1", "admin")

    def chunks():
        yield b'{"provider": "github", "pad": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = requests.post(f"{served.config.public_url}/api/v1/connections", data=chunks(),
                             timeout=30, headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
    _problem(_Wire(response), 413, "api.too_large")
    _nothing_stored(served)


def test_a_body_shorter_than_its_content_length_is_a_400(served):
    token = served.token(TENANT, "admin-1", "admin")
    url = urlsplit(served.config.public_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/connections HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 500\r\n"
                     b"Connection: close\r\n\r\n" + b'{"provider": "github"}')
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/problem+json" in head
    assert b'"code": "input.truncated"' in body  # (the streamed answer is chunked)
    _nothing_stored(served)


def test_the_local_servers_own_414_is_problem_json():
    """Past the api's cap, ``make run``'s server refuses a request line over 65536 bytes
    itself: that answer is problem+json too."""
    server = make_server("127.0.0.1", 0, wsgi.root_app("embedded"), threaded=True,
                         request_handler=wsgi.ProblemRequestHandler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        response = requests.get(f"http://127.0.0.1:{server.server_port}/api/v1/issues?q="
                                + "a" * 70_000, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 414
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert response.json()["code"] == "http.414" and response.json()["status"] == 414
