"""`keyway run`'s own lifecycle: the stack file the CLI reads, a shutdown no signal can wedge,
and the emulator proxy forwarding paths exactly as sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from keyway import wsgi
from keyway.emulators import free_port
from keyway.runner import Runner
from shared.config import Config
from tests.integration.test_local_stack import _start, _wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def test_the_sigterm_handler_takes_no_lock_the_main_thread_may_hold(tmp_path):
    """The main thread waits inside ``Event.wait``, holding the event's lock at its edges; a
    handler calling ``Event.set`` there deadlocked the shutdown. The handler only sets a flag."""
    runner = Runner(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    with runner.stop_event._cond:  # what the main thread holds when the signal lands
        handler = threading.Thread(target=runner.request_stop, args=(signal.SIGTERM, None))
        handler.start()
        handler.join(timeout=5)
    assert not handler.is_alive() and runner.stop_requested


def test_repeated_sigterm_stops_the_stack_and_dev_token_follows_its_port(tmp_path):
    port, state, log = free_port(), tmp_path / "state", tmp_path / "run.log"
    process = _start({"KEYWAY_BACKEND": "embedded", "KEYWAY_STATE_DIR": str(state)}, port, log)
    try:
        _wait_healthy(port, process, log)
        deadline = time.monotonic() + 60
        while not (state / "stack.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        stack = json.loads((state / "stack.json").read_text())
        assert stack["pid"] == process.pid and stack["port"] == port
        env = {**os.environ, "KEYWAY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
        env.pop("PORT", None)  # the default 8080: not the stack's port
        minted = subprocess.run([sys.executable, "-m", "keyway", "dev", "token", "--tenant",
                                 "t-1", "--user", "u-1", "--role", "admin"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60, check=True)
        token = minted.stdout.strip()
        assert jwt.decode(token, options={"verify_signature": False})["iss"] == (
            stack["auth_issuer"])
        listed = requests.get(f"http://127.0.0.1:{port}/api/v1/connections", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        for _ in range(3):
            process.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (state / "stack.json").exists()


def test_the_emulator_proxy_forwards_the_path_as_sent():
    seen: list[str] = []

    @Request.application
    def function(request: Request) -> Response:
        seen.append(request.environ["RAW_URI"])
        return Response("ok")

    upstream = make_server("127.0.0.1", 0, function, threaded=True)
    front = make_server("127.0.0.1", 0, wsgi.mounted("emulator", {"api": wsgi.proxy_app(
        f"http://127.0.0.1:{upstream.server_port}", requests.Session())}), threaded=True)
    for server in (upstream, front):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = "/v1/issues/t%3A1:github:issue:acme%2Fwidgets%2342"
        answer = requests.get(f"http://127.0.0.1:{front.server_port}/api{path}?a=1", timeout=10)
        assert answer.status_code == 200
        assert seen == [f"{path}?a=1"]
    finally:
        front.shutdown()
        upstream.shutdown()


def test_sandbox_connections_survive_a_restart_of_the_stack(tmp_path):
    """A connection stores its simulator's URL and tokens: after a restart the simulator is
    back on its port and knows the tokens it issued, so the next sync succeeds."""
    from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
    from tests.integration.test_local_stack import (
        _connect_in_the_sandbox,
        _dev_token,
        _wait_first_sync,
    )

    port, state = free_port(), tmp_path / "state"
    env = {"KEYWAY_BACKEND": "embedded", "KEYWAY_STATE_DIR": str(state)}
    store = SqliteDocumentStore(state / "business.db")
    first = _start(env, port, tmp_path / "first.log")
    try:
        _wait_healthy(port, first, tmp_path / "first.log")
        token = _dev_token(first)
        connection = _connect_in_the_sandbox(port, token, "gitlab")
        before = _wait_first_sync(store, connection)
        assert before["pull_requests"]
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    saved = json.loads((state / "sandbox.json").read_text())
    assert oct((state / "sandbox.json").stat().st_mode & 0o777) == "0o600"
    second = _start(env, port, tmp_path / "second.log")
    try:
        _wait_healthy(port, second, tmp_path / "second.log")
        assert json.loads((state / "sandbox.json").read_text())["gitlab"]["port"] == (
            saved["gitlab"]["port"])
        finished_before = store.get("sync_status", connection)["finished_at"]
        asked = requests.post(f"http://127.0.0.1:{port}/api/v1/connections/{connection}/sync",
                              headers={"Authorization": f"Bearer {_dev_token(second)}"},
                              timeout=10)
        assert asked.status_code == 202, asked.text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = store.get("sync_status", connection) or {}
            if status.get("finished_at") != finished_before and status.get("state") != "running":
                break
            time.sleep(0.5)
        assert status.get("state") == "done", status
        assert store.get("connections", connection)["status"] == "active"
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=60)


def _healthz(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()


def _eventually(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.emulator
def test_a_dead_function_comes_back_and_a_lost_bus_is_restored(tmp_path, emulator_env,
                                                               unique_project):
    """Emulator mode: a function process killed is restarted on its port and reported; topics
    a restarted Pub/Sub emulator lost come back; /healthz reports each backend."""
    from shared.policy import subscription_name

    port, state, log = free_port(), tmp_path / "state", tmp_path / "run.log"
    env = {"KEYWAY_BACKEND": "emulator", "KEYWAY_STATE_DIR": str(state),
           "KEYWAY_PROJECT": unique_project, **emulator_env}
    process = _start(env, port, log)
    try:
        first = _wait_healthy(port, process, log)
        assert first["status"] == "ok"
        assert first["backends"] == {"firestore": "reachable", "pubsub": "reachable"}
        scheduler = next(f for f in first["functions"] if f["name"] == "scheduler")
        os.killpg(scheduler["process"]["pid"], signal.SIGKILL)  # its own session
        back = _eventually(lambda: next(
            (f for f in _healthz(port)["functions"] if f["name"] == "scheduler"
             and f["process"]["restarts"] == 1 and f["process"]["alive"]), None), 60,
            "the scheduler process to be restarted")
        assert back["process"]["pid"] != scheduler["process"]["pid"]
        assert back["process"]["last_exit_code"] == -signal.SIGKILL
        pubsub = f"http://{emulator_env['PUBSUB_EMULATOR_HOST']}/v1/projects/{unique_project}"
        subscription = f"{pubsub}/subscriptions/{subscription_name('refresh-ticks')}"
        for gone in (subscription, f"{pubsub}/topics/refresh-ticks"):  # as a restart loses them
            assert requests.delete(gone, timeout=10).status_code == 200
        _eventually(lambda: requests.get(subscription, timeout=5).status_code == 200, 60,
                    "the tick subscription to be created again")
        assert "runner.bus_restored" in log.read_text()
        assert _healthz(port)["status"] == "ok"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
