"""The local stack's function processes (:mod:`keyway.supervisor`): each gets a port of its
own, and one whose port something else took before it could bind comes back on a free one,
where the front proxy finds it (:meth:`~keyway.supervisor.Supervisor.port_of`)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import requests

from keyway import emulators, supervisor
from keyway.firststart import ensure_local_state
from shared.bootstrap import build
from shared.components import COMPONENTS
from shared.config import Config

ROOT = Path(__file__).resolve().parents[2]


def test_ports_chosen_together_are_distinct():
    ports = emulators.free_ports(len(COMPONENTS))
    assert len(set(ports)) == len(COMPONENTS) and all(not emulators.port_taken(p) for p in ports)


def test_a_function_whose_port_is_taken_restarts_on_a_free_one(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    assert emulators.port_taken(taken)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEYWAY_BACKEND": "embedded",
           "KEYWAY_STATE_DIR": str(tmp_path / "state")}
    (tmp_path / "logs").mkdir()
    ensure_local_state(build(Config.from_env(env)))  # the push credential fnserve reads
    sup = supervisor.Supervisor(env, tmp_path / "logs")
    stop = threading.Event()
    sup.spawn("notify", taken)
    watcher = threading.Thread(target=sup.watch, args=(stop.is_set,), daemon=True)
    watcher.start()
    try:
        deadline, answered = time.monotonic() + 90, None
        while time.monotonic() < deadline and answered is None:
            port = sup.port_of("notify")
            if port != taken and sup.status()["notify"]["alive"]:
                try:
                    answered = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                except requests.RequestException:
                    pass
            time.sleep(0.3)
        assert answered is not None, (tmp_path / "logs" / "notify.log").read_text()[-2000:]
        status = sup.status()["notify"]
        assert status["restarts"] >= 1 and status["last_exit_code"] not in (None, 0)
        assert emulators.port_taken(taken)  # the holder still has it: nothing else bound there
    finally:
        stop.set()
        holder.close()
        for process in sup.processes():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        watcher.join(timeout=5)
