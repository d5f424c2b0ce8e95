"""The local stack's push endpoints answer only the local push credential: in production only
Pub/Sub (with an OIDC token Cloud Run checks) reaches a Pub/Sub-triggered function, so locally
a request to ``/<function>/projects/P/topics/T`` without ``local-push-token`` is a 401 and its
message is never handled — while the runner's own pump still delivers."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from keyway import runner as runner_module
from keyway import wsgi
from keyway.firststart import PUSH_TOKEN_SECRET
from shared import bootstrap, messages
from shared.config import Config
from shared.ports import Message
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
