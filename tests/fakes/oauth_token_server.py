"""A real OAuth 2.0 token endpoint on loopback: refresh_token grant with optional rotation
(single-use refresh tokens), RFC 7009 revocation, a call log, delays and outages on demand."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


class OAuthTokenServer:
    def __init__(self, *, client_id: str = "client-1",
                 client_secret: str = "client-secret-1",  # noqa: S107 - a test credential
                 rotate: bool = True, expires_in: int = 3600, delay: float = 0.0,
                 on_issue: Callable[[str], object] = lambda token: token) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.on_issue = on_issue  # e.g. the leak guard's track: every token issued is watched
        self.rotate, self.expires_in, self.delay = rotate, expires_in, delay
        self.down = False
        self.valid_refresh: set[str] = set()
        self.revoked: list[str] = []
        self.refresh_calls = 0
        self.issued_access: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OAuthTokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def issue_refresh_token(self) -> str:
        token = "ghr_" + secrets.token_hex(20)
        self.on_issue(token)
        with self._lock:
            self.valid_refresh.add(token)
        return token

    def _grant(self, form: dict[str, str]) -> tuple[int, dict]:
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                  self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        time.sleep(self.delay)
        with self._lock:
            self.refresh_calls += 1
            old = form.get("refresh_token", "")
            if old not in self.valid_refresh:
                return 400, {"error": "invalid_grant"}
            access = "gho_" + secrets.token_hex(20)
            self.on_issue(access)
            self.issued_access.append(access)
            body = {"access_token": access, "token_type": "bearer",
                    "expires_in": self.expires_in, "scope": "read_api"}
            if self.rotate:
                self.valid_refresh.discard(old)
                body["refresh_token"] = new = "ghr_" + secrets.token_hex(20)
                self.on_issue(new)
                self.valid_refresh.add(new)
        return 200, body

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                if server.down:
                    status, body = 503, {"error": "temporarily_unavailable"}
                elif self.path in ("/token", "/login/oauth/access_token", "/oauth/token"):
                    status, body = server._grant(form)
                elif self.path == "/revoke":
                    server.revoked.append(form.get("token", ""))
                    with server._lock:
                        server.valid_refresh.discard(form.get("token", ""))
                    status, body = 200, {}
                else:
                    status, body = 404, {"error": "not_found"}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
