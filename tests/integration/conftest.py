"""A local stack in-process for connect-flow tests: the api and oauth-P functions mounted
exactly as `make run` mounts them, real embedded adapters, provider simulators on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import functions_framework
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.test import Client

from keyway import wsgi
from keyway.emulators import free_port
from keyway.firststart import ensure_local_state
from shared import bootstrap
from shared.api import authn
from shared.topology import outlet_topics, subscription_specs
from shared.vault import handlers as vault_handlers

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = "http://127.0.0.1:8080"
FUNCTIONS = ("api", "oauth-github", "oauth-gitlab", "oauth-bitbucket", "oauth-jira",
             "webhook-github", "webhook-gitlab", "webhook-bitbucket", "webhook-jira")


def redirect_uri(provider: str) -> str:
    return f"{PUBLIC_URL}/oauth-{provider}/callback"


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class LocalStack:
    client: Client
    ports: object
    config: object
    leak_guard: object
    responses: list = field(default_factory=list)
    app: object = None  # the mounted WSGI app, for tests that serve it over real HTTP

    def token(self, tenant: str, user: str, role: str, **kwargs) -> str:
        issuer = authn.local_issuer(self.config, self.ports.clock)
        return self.leak_guard.track(issuer.issue(tenant, user, role, **kwargs))

    def call(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        self.leak_guard.check_response(response, f"{method} {path.split('?')[0]}")
        return response

    def through_start(self, authorize_url: str, token: str | None = None,
                      client: Client | None = None) -> str:
        """Be the browser at keyway's start step: GET ``authorize_url`` (an app flow) or, with
        ``token``, post its form (RFC 6750 §2.2), as an identity link needs. Returns the
        provider URL it redirects to; ``client`` (default: this stack's) keeps the cookie."""
        client = client or self.client
        parts = urlsplit(authorize_url)
        if token is None:
            response = client.get(f"{parts.path}?{parts.query}")
        else:
            response = client.post(parts.path, data={"state": query_of(authorize_url)["state"],
                                                     "access_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        return response.headers["Location"]

    def provider_config(self, monkeypatch, provider: str, client_id: str, secret: str,
                        oauth_url: str, api_url: str) -> None:
        up = provider.upper()
        monkeypatch.setenv(f"KEYWAY_{up}_CLIENT_ID", client_id)
        monkeypatch.setenv(f"KEYWAY_{up}_OAUTH_URL", oauth_url)
        monkeypatch.setenv(f"KEYWAY_{up}_API_URL", api_url)
        monkeypatch.setenv(f"KEYWAY_SECRET_{up}_CLIENT_SECRET", secret)


def _reset_caches() -> None:
    bootstrap._cached.cache_clear()
    bootstrap.config.cache_clear()
    authn.verifier.cache_clear()
    vault_handlers._SERVICES.clear()


def function_app(name: str):
    """A fresh functions-framework app of ``name`` (a new instance: its own caches)."""
    return functions_framework.create_app("serve", str(ROOT / "functions" / name / "main.py"),
                                          "http")


def build_stack(tmp_path, monkeypatch, leak_guard, port: int = 8080,
                backend_env: dict[str, str] | None = None) -> LocalStack:
    """The stack with its public URL at ``http://127.0.0.1:<port>`` (nothing listens there
    unless the caller serves :attr:`LocalStack.app`); ``backend_env`` (e.g.
    ``KEYWAY_BACKEND=emulator`` and its project) selects another backend than embedded."""
    monkeypatch.setenv("KEYWAY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PORT", str(port))
    for name in ("KEYWAY_BACKEND", "KEYWAY_PUBLIC_URL", "KEYWAY_FRONTEND_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (backend_env or {}).items():
        monkeypatch.setenv(name, value)
    _reset_caches()
    ports = bootstrap.ports()
    ensure_local_state(ports)
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    for topic in outlet_topics():
        ports.bus.ensure_topic(topic)
    app = wsgi.mounted("embedded", {name: function_app(name) for name in FUNCTIONS})
    return LocalStack(Client(app), ports, bootstrap.config(), leak_guard, app=app)


@pytest.fixture
def local_stack(tmp_path, monkeypatch, leak_guard) -> Iterator[LocalStack]:
    yield build_stack(tmp_path, monkeypatch, leak_guard)
    _reset_caches()


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


@contextmanager
def served_stack(tmp_path: Path, monkeypatch, leak_guard) -> Iterator[LocalStack]:
    """:func:`build_stack`, also listening on its public URL over real HTTP (where registered
    hooks point and simulators deliver) until the block ends."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    port = free_port()
    stack = build_stack(tmp_path, monkeypatch, leak_guard, port)
    server = make_server("127.0.0.1", port, stack.app, threaded=True, request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield stack
    finally:
        server.shutdown()
        server.server_close()
        _reset_caches()


@pytest.fixture
def served(tmp_path, monkeypatch, leak_guard) -> Iterator[LocalStack]:
    """The local stack, also listening on its public URL (:func:`served_stack`)."""
    with served_stack(tmp_path, monkeypatch, leak_guard) as stack:
        yield stack
