"""A real OAuth 2.0 authorization server on loopback for end-to-end tests, and a tiny browser.

The server is ``tests/oidc_server/server.mjs`` (the npm package ``oidc-provider``, pinned in
``tests/oidc_server/package.json``), installed with::

    npm ci --prefix tests/oidc_server --no-audit --no-fund

Use it from a fixture (under ``CI=true`` a missing node or ``node_modules`` fails the test,
elsewhere it is skipped with the reason)::

    @pytest.fixture(scope="session")
    def authserver() -> Iterator[AuthServer]:
        yield from authserver_fixture([{"client_id": "keyway", "client_secret": "s3cret-...",
                                        "redirect_uris": ["http://127.0.0.1:8080/oauth-x/callback"]}])

    def test_flow(authserver):
        verifier, challenge = pkce_pair()
        url = authorize_request(authserver, client_id="keyway", redirect_uri=..., state="st-1",
                                code_challenge=challenge, scope="openid offline_access read_api",
                                prompt="consent")
        callback = drive_consent(requests.Session(), url, username="alice",
                                 stop_at_prefix="http://127.0.0.1:8080/oauth-x/callback")

Things oidc-provider does that a test must know (details in ``server.mjs``):

* PKCE S256 is required for every request; ``plain`` is refused.
* ``offline_access`` is silently dropped unless the request also has ``prompt=consent`` — no
  refresh token then. ``refresh_tokens="always"`` issues one on every code exchange instead.
* Refresh tokens rotate; replaying a used code or a rotated refresh token answers
  ``invalid_grant`` **and revokes every token of that grant**.
* Scopes not configured are dropped silently (no ``invalid_scope``); configured ones are
  ``openid offline_access read_api api`` plus ``scopes=[...]``.
* The authorization callback carries ``code``, ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
AUTHSERVER_DIR = REPO_ROOT / "tests" / "oidc_server"
SERVER_SCRIPT = AUTHSERVER_DIR / "server.mjs"
INSTALL_COMMAND = "npm ci --prefix tests/oidc_server --no-audit --no-fund"
MIN_NODE_MAJOR = 20
READY_PREFIX = '{"ready"'
HTTP_TIMEOUT = 10.0
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
DEV_PASSWORD = "any-password"  # oidc-provider's dev login page ignores the password


class AuthServerUnavailable(RuntimeError):
    """node or the npm packages are missing; the message says what and how to install."""


class AuthServerError(RuntimeError):
    """The server was installed but did not start or answered something unexpected."""


class ConsentFlowError(AssertionError):
    """:func:`drive_consent` met a page or redirect it did not expect (no tokens in the text)."""


def ci_strict() -> bool:
    """The same rule as ``tests/conftest.py``: under ``CI=true`` missing tools fail the run."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# ---- availability ---------------------------------------------------------------------------
def check_available() -> str:
    """The path of ``node`` once node and the pinned ``oidc-provider`` are installed; else
    :class:`AuthServerUnavailable` saying what is missing."""
    node = shutil.which("node")
    if not node:
        raise AuthServerUnavailable(f"node is not on PATH (Node.js >= {MIN_NODE_MAJOR} is needed "
                                    f"for the test authorization server)")
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10,
                             check=False)
        major = int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise AuthServerUnavailable(f"cannot run {node} --version: {e}") from e
    if major < MIN_NODE_MAJOR:
        raise AuthServerUnavailable(f"node {out.stdout.strip()} is too old "
                                    f"(need >= {MIN_NODE_MAJOR})")
    installed = AUTHSERVER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not installed.is_file():
        raise AuthServerUnavailable(f"{installed.parent.relative_to(REPO_ROOT)} is missing; "
                                    f"run: {INSTALL_COMMAND}")
    pinned = json.loads((AUTHSERVER_DIR / "package.json").read_text())["dependencies"]
    wanted = pinned["oidc-provider"]
    have = json.loads(installed.read_text()).get("version")
    if have != wanted:
        raise AuthServerUnavailable(f"oidc-provider {have} is installed but {wanted} is pinned; "
                                    f"run: {INSTALL_COMMAND}")
    return node


# ---- the server -----------------------------------------------------------------------------
@dataclass
class AuthServer:
    """A running ``server.mjs``; endpoints come from its discovery document."""

    process: subprocess.Popen[bytes]
    log_path: Path
    port: int
    issuer: str
    discovery: dict[str, Any] = field(repr=False)

    @property
    def authorize_url(self) -> str:
        return self.discovery["authorization_endpoint"]

    @property
    def token_url(self) -> str:
        return self.discovery["token_endpoint"]

    @property
    def revocation_url(self) -> str:
        return self.discovery["revocation_endpoint"]

    @property
    def introspection_url(self) -> str:
        return self.discovery["introspection_endpoint"]

    @classmethod
    def start(cls, clients: list[dict[str, Any]], access_token_ttl: int = 3600, *,
              refresh_token_ttl: int | None = None, scopes: Iterable[str] = (),
              refresh_tokens: str = "offline_access", log_dir: Path | None = None,
              timeout: float = 30.0, routes: dict[str, str] | None = None) -> AuthServer:
        """Spawn ``node tests/oidc_server/server.mjs`` on a free 127.0.0.1 port and wait for it.

        ``clients``: ``{"client_id", "client_secret", "redirect_uris": [...]}`` and optionally
        ``"token_endpoint_auth_method"`` (either way client_secret_basic and client_secret_post
        both work). ``refresh_tokens``: ``"offline_access"`` (needs ``prompt=consent`` too) or
        ``"always"``. Raises :class:`AuthServerUnavailable` when node or the packages are
        missing, :class:`AuthServerError` when the server does not come up.
        """
        node = check_available()
        config: dict[str, Any] = {"clients": clients, "access_token_ttl": access_token_ttl,
                                  "scopes": list(scopes), "refresh_tokens": refresh_tokens}
        if refresh_token_ttl is not None:
            config["refresh_token_ttl"] = refresh_token_ttl
        if routes:
            config["routes"] = routes  # e.g. GitLab's /oauth/authorize and /oauth/token
        # The configuration (client secrets) goes through the environment, not argv (ps).
        env = {k: v for k, v in os.environ.items() if k != "DEBUG"}  # debug logs could show tokens
        env["KEYWAY_AUTHSERVER_CONFIG"] = json.dumps(config)
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="keyway-authserver-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "authserver.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [node, str(SERVER_SCRIPT.relative_to(REPO_ROOT)), "--port", "0"],
                cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            ready = _wait_ready(process, log_path, timeout)
            issuer = ready["issuer"]
            discovery = _discover(issuer)
        except BaseException:
            _terminate(process)
            raise
        return cls(process, log_path, int(ready["port"]), issuer, discovery)

    def stop(self) -> None:
        """Terminate the server this object started (by its PID) and wait for it."""
        _terminate(self.process)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def __enter__(self) -> AuthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = process.poll() is not None
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                ready = json.loads(line)
                if ready.get("ready") and ready.get("issuer"):
                    return ready
        if exited:
            break
        time.sleep(0.05)
    tail = log_path.read_text(errors="replace")[-800:]
    state = f"exited with {process.returncode}" if process.poll() is not None else "timed out"
    raise AuthServerError(f"the test authorization server did not become ready ({state}): {tail}")


def _discover(issuer: str) -> dict[str, Any]:
    response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
    if response.status_code != 200:
        raise AuthServerError(f"discovery answered {response.status_code}")
    discovery = response.json()
    if discovery.get("issuer") != issuer:
        raise AuthServerError(f"discovery issuer {discovery.get('issuer')!r} != {issuer!r}")
    return discovery


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def authserver_fixture(clients: list[dict[str, Any]], access_token_ttl: int = 3600,
                       **options: Any) -> Iterator[AuthServer]:
    """The body of a pytest fixture: ``yield from authserver_fixture([...])``.

    Starts an :class:`AuthServer` (``options`` as for :meth:`AuthServer.start`), yields it and
    stops it. When node or the npm packages are missing: ``pytest.fail`` under ``CI=true``,
    ``pytest.skip`` with the reason elsewhere.
    """
    try:
        server = AuthServer.start(clients, access_token_ttl, **options)
    except AuthServerUnavailable as e:
        if ci_strict():
            pytest.fail(f"the test authorization server is required under CI=true: {e}",
                        pytrace=False)
        pytest.skip(f"test authorization server unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()


# ---- request helpers ------------------------------------------------------------------------
def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, S256 code_challenge)``."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def authorize_request(server: AuthServer, *, client_id: str, redirect_uri: str, state: str,
                      code_challenge: str, scope: str, **extra: str) -> str:
    """The authorization URL for a code + S256 PKCE request (``extra``: prompt, nonce, ...)."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, "code_challenge": code_challenge,
              "code_challenge_method": "S256", **extra}
    return f"{server.authorize_url}?{urlencode(params)}"


# ---- the tiny browser -----------------------------------------------------------------------
@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects every ``<form>`` with its named ``<input>`` values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(attributes.get("action", ""),
                                  (attributes.get("method") or "get").upper())
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            self._current.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _snippet(response: requests.Response, limit: int = 240) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", response.text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip()[:limit]


def _where(url: str) -> str:
    """A URL without its query and fragment (they may carry codes)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def drive_consent(session: requests.Session, authorize_url: str, *, username: str,
                  stop_at_prefix: str, password: str = DEV_PASSWORD, max_steps: int = 20) -> str:
    """Act as the user's browser: GET ``authorize_url``, sign in as ``username`` on the login
    page, confirm the consent page, and follow redirects (manually, cookies in ``session``)
    until one points at ``stop_at_prefix`` (the client's redirect_uri). Returns that URL — with
    ``code``, ``state`` (and ``iss``), or ``error`` — without requesting it.

    Raises :class:`ConsentFlowError` on a page without the expected form, an error page, or a
    redirect leaving the authorization server for anywhere but ``stop_at_prefix``.
    """
    server_origin = _origin(authorize_url)
    url, method, data = authorize_url, "GET", None
    for step in range(1, max_steps + 1):
        as_query = method == "GET"
        response = session.request(method, url, params=data if as_query else None,
                                   data=None if as_query else data, allow_redirects=False,
                                   timeout=HTTP_TIMEOUT)
        if response.status_code in REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if not location:
                raise ConsentFlowError(f"step {step}: {response.status_code} from {_where(url)} "
                                       f"without a Location header")
            target = urljoin(url, location)
            if target.startswith(stop_at_prefix):
                return target
            if _origin(target) != server_origin:
                raise ConsentFlowError(f"step {step}: redirected off the authorization server to "
                                       f"{_where(target)}, which is not {stop_at_prefix}")
            if response.status_code in (307, 308) and method != "GET":
                raise ConsentFlowError(f"step {step}: {response.status_code} after {method} "
                                       f"is not supported")
            url, method, data = target, "GET", None
            continue
        content_type = response.headers.get("Content-Type", "")
        if response.status_code != 200 or "html" not in content_type:
            raise ConsentFlowError(f"step {step}: {_where(url)} answered {response.status_code} "
                                   f"({content_type or 'no content type'}): {_snippet(response)!r}")
        parser = _FormParser()
        parser.feed(response.text)
        forms = [f for f in parser.forms if f.fields.get("prompt") in ("login", "consent")]
        if len(forms) != 1:
            raise ConsentFlowError(f"step {step}: {_where(url)} has no login or consent form "
                                   f"(status {response.status_code}): {_snippet(response)!r}")
        form = forms[0]
        data = dict(form.fields)
        if form.fields["prompt"] == "login":
            data.update(login=username, password=password)
        url, method = urljoin(url, form.action or url), form.method
        if _origin(url) != server_origin:
            raise ConsentFlowError(f"step {step}: the form posts off the server to {_where(url)}")
    raise ConsentFlowError(f"no redirect to {stop_at_prefix} after {max_steps} steps")


__all__ = [
    "INSTALL_COMMAND", "AuthServer", "AuthServerError", "AuthServerUnavailable",
    "ConsentFlowError", "authorize_request", "authserver_fixture", "check_available",
    "ci_strict", "drive_consent", "pkce_pair",
]
