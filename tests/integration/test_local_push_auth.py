"""The local stack's push endpoints answer only the local push credential: in production only
Pub/Sub (with an OIDC token Cloud Run checks) reaches a Pub/Sub-triggered function, so locally
a request to ``/<function>/projects/P/topics/T`` without ``local-push-token`` is a 401 and its
message is never handled — while the runner's own pump still delivers."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from keyway import fnserve, wsgi
from keyway import runner as runner_module
from keyway.firststart import PUSH_TOKEN_SECRET, ensure_local_state
from shared import bootstrap, messages
from shared.components import COMPONENTS
from shared.config import Config
from shared.ports import Message
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.fakes.oauth_token_server import OAuthTokenServer
from tests.integration.conftest import _reset_caches


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stack(tmp_path: Path, monkeypatch, leak_guard):
    port = _free_port()
    for name, value in {"KEYWAY_STATE_DIR": str(tmp_path / "state"), "PORT": str(port),
                        "KEYWAY_BACKEND": "embedded", "NO_PROXY": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KEYWAY_PUBLIC_URL", raising=False)
    _reset_caches()
    runner = runner_module.Runner(Config.from_env())
    runner.start_embedded()
    leak_guard.track(bootstrap.ports().secrets.access(PUSH_TOKEN_SECRET))
    yield runner
    runner.stop()
    _reset_caches()


def _tick(message_id: str, project: str) -> dict:
    data, attributes = messages.encode("cloud-scheduler", "refresh.tick",
                                       {"tick_time": "2026-01-01T00:00:00.000000Z"})
    message = Message("refresh-ticks", data, attributes, message_id, datetime.now(UTC))
    return runner_module.push_body(project, "refresh-ticks-scheduler", message)


def _handled(caplog, message_id: str) -> bool:
    return any(r.getMessage() == "message.handled"
               and message_id in str(getattr(r, "fields", {})) for r in caplog.records)


def _post(runner, message_id: str, **kwargs) -> requests.Response:
    url = (f"http://127.0.0.1:{runner.config.port}/scheduler/projects/"
           f"{runner.config.project}/topics/refresh-ticks")
    return requests.post(url, json=_tick(message_id, runner.config.project), timeout=30,
                         **kwargs)


def test_a_forged_push_without_the_local_credential_is_refused_and_not_handled(stack, caplog):
    caplog.set_level(logging.INFO)
    forged = {"no credential": {},
              "a wrong header": {"headers": {wsgi.PUSH_HEADER: "guess"}},
              "a wrong query token": {"params": {wsgi.PUSH_QUERY: "guess"}}}
    for number, (case, kwargs) in enumerate(forged.items()):
        response = _post(stack, f"forged-{number}", **kwargs)
        assert response.status_code == 401, case
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "runner.push_unauthorized"
    time.sleep(0.5)
    assert not any(_handled(caplog, f"forged-{n}") for n in range(len(forged)))
    assert any(r.getMessage() == "runner.push_unauthorized" for r in caplog.records)


def test_the_credential_admits_a_push_by_header_or_query_and_the_pump_still_delivers(
        stack, caplog):
    caplog.set_level(logging.INFO)
    token = bootstrap.ports().secrets.access(PUSH_TOKEN_SECRET).decode()
    assert _post(stack, "genuine-header", headers={wsgi.PUSH_HEADER: token}).status_code < 300
    assert _post(stack, "genuine-query", params={wsgi.PUSH_QUERY: token}).status_code < 300
    assert _handled(caplog, "genuine-header") and _handled(caplog, "genuine-query")
    deadline = time.monotonic() + 20  # the ticker's first tick, delivered by the pump
    while time.monotonic() < deadline and not any(
            r.getMessage() == "message.handled" and "scheduler" in str(getattr(r, "fields", {}))
            and "genuine" not in str(getattr(r, "fields", {})) for r in caplog.records):
        time.sleep(0.2)
    assert not any(r.getMessage() == "runner.push_unauthorized" for r in caplog.records)
    assert any(r.getMessage() == "message.handled" and "genuine" not in str(r.fields)
               for r in caplog.records if hasattr(r, "fields"))


def test_the_http_functions_need_no_push_credential(stack):
    response = requests.get(f"http://127.0.0.1:{stack.config.port}/api/v1/connections",
                            timeout=30)
    assert response.status_code == 401 and response.json().get("code") != (
        "runner.push_unauthorized")


# ---- emulator mode: each function's own loopback port ----------------------------------------
@pytest.fixture
def vault_port(tmp_path: Path, monkeypatch, leak_guard):
    """vault-github in its own process, as ``make run BACKEND=emulator`` starts it (embedded
    stores here, so this test reads what the process wrote), with a connection and its token."""
    server = OAuthTokenServer(on_issue=leak_guard.track).start()
    env = {"KEYWAY_STATE_DIR": str(tmp_path / "state"), "KEYWAY_BACKEND": "embedded",
           "KEYWAY_GITHUB_CLIENT_ID": server.client_id, "KEYWAY_GITHUB_OAUTH_URL": server.url,
           "KEYWAY_SECRET_GITHUB_CLIENT_SECRET": server.client_secret, "NO_PROXY": "127.0.0.1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _reset_caches()
    ports = bootstrap.ports()
    ensure_local_state(ports)
    leak_guard.track(ports.secrets.access(PUSH_TOKEN_SECRET))
    token = TokenSet("gho_" + "P" * 36, server.issue_refresh_token(),
                     datetime.now(UTC) + timedelta(hours=8), ("repo",))
    vault_handlers.service("github", ports).store_app_token("t-1", "conn-1", "admin", token)
    ports.business.put("connections", "conn-1", {"tenant": "t-1", "provider": "github",
                                                 "status": "active"})
    port = _free_port()
    process = fnserve.spawn(COMPONENTS["vault-github"], port, dict(os.environ),
                            tmp_path / "vault-github.log")
    try:
        _wait_listening(port, process, tmp_path / "vault-github.log")
        yield ports, port, server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        server.stop()
        _reset_caches()


def _wait_listening(port: int, process, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"vault-github never listened:\n{log.read_text()[-2000:]}")


def _disconnect_push(port: int, **kwargs) -> requests.Response:
    data, attributes = messages.encode("api", "connection.disconnect",
                                       {"tenant": "t-1", "connection": "conn-1"})
    message = Message("connection-control-github", data, attributes, "m-1", datetime.now(UTC))
    body = runner_module.push_body("keyway-local", "connection-control-github-to-vault-github",
                                   message)
    return requests.post(f"http://127.0.0.1:{port}/projects/keyway-local/topics/"
                         "connection-control-github", json=body, timeout=30, **kwargs)


def test_a_forged_push_to_a_functions_own_port_is_refused_and_changes_nothing(vault_port):
    ports, port, server = vault_port
    stored = ports.vault.get("app_tokens", "conn-1")
    forged = {"no credential": {},
              "a wrong header": {"headers": {wsgi.PUSH_HEADER: "guess"}},
              "a wrong query token": {"params": {wsgi.PUSH_QUERY: "guess"}}}
    for case, kwargs in forged.items():
        response = _disconnect_push(port, **kwargs)
        assert response.status_code == 401, case
        assert response.json()["code"] == "runner.push_unauthorized"
    assert ports.vault.get("app_tokens", "conn-1") == stored
    assert ports.business.get("connections", "conn-1")["status"] == "active"
    assert server.revoked == []
    # the same push with the credential is handled: the refusal above was the guard's
    token = ports.secrets.access(PUSH_TOKEN_SECRET).decode()
    assert _disconnect_push(port, headers={wsgi.PUSH_HEADER: token}).status_code < 300
    assert ports.vault.get("app_tokens", "conn-1") is None
    assert ports.business.get("connections", "conn-1")["status"] == "disconnected"
