"""What keeps ``make run BACKEND=emulator`` whole: dead function processes come back, and
``/healthz`` tells the truth about each function and each backend.

* :class:`Supervisor` owns one functions-framework process per function
  (:func:`keyway.fnserve.spawn`) on a fixed loopback port. A watcher thread polls them every
  :data:`WATCH_SECONDS`; one that exited is logged (``runner.function_died`` with its exit
  code), started again and counted: on the same port, unless something else holds it by now
  (a port is chosen free, then bound by the child a moment later; another socket can take it
  in between), then on a fresh one (``runner.function_moved``). The front proxy asks
  :meth:`Supervisor.port_of` on every request, and the emulator's push subscriptions point at
  the front proxy, so a move needs no other change.
* :func:`backends` probes each backend the stack uses with a TCP connect (bounded by
  :data:`PROBE_SECONDS`; a client call to a stopped emulator would retry for a minute): the
  Firestore and Pub/Sub emulators, or the embedded SQLite files.
* :func:`health` is the ``/healthz`` body: ``status`` is ``ok`` only when every backend is
  reachable and every function process is alive; else ``degraded``, with what is not.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyway import emulators, fnserve
from shared.components import COMPONENTS
from shared.config import Config
from shared.log import get_logger

WATCH_SECONDS = 1.0
PROBE_SECONDS = 0.5
log = get_logger("keyway.runner")


@dataclass
class _Function:
    port: int
    process: subprocess.Popen
    restarts: int = 0
    last_exit: int | None = None


@dataclass
class Supervisor:
    env: dict[str, str]
    log_dir: Path
    functions: dict[str, _Function] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(self, name: str, port: int) -> None:
        process = fnserve.spawn(COMPONENTS[name], port, self.env, self.log_dir / f"{name}.log")
        with self._lock:
            current = self.functions.get(name)
            self.functions[name] = _Function(port, process, *(
                (current.restarts, current.last_exit) if current else ()))

    def processes(self) -> list[subprocess.Popen]:
        with self._lock:
            return [f.process for f in self.functions.values()]

    def watch(self, stopping: Callable[[], bool]) -> None:
        """Until ``stopping()``: restart every function process that exited."""
        while not stopping():
            for name, function in list(self.functions.items()):
                code = function.process.poll()
                if code is not None and not stopping():
                    self._restart(name, function, code)
            threading.Event().wait(WATCH_SECONDS)

    def port_of(self, name: str) -> int:
        with self._lock:
            return self.functions[name].port

    def _restart(self, name: str, function: _Function, code: int) -> None:
        log.warning("runner.function_died", extra={"fields": {"function": name,
                                                              "exit_code": code}})
        with self._lock:
            function.restarts += 1
            function.last_exit = code
        port = function.port
        if emulators.port_taken(port):
            port = emulators.free_port()
            log.warning("runner.function_moved", extra={"fields": {
                "function": name, "from": function.port, "to": port}})
        self.spawn(name, port)
        log.info("runner.function_restarted", extra={"fields": {
            "function": name, "restarts": function.restarts}})

    def status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: {"pid": f.process.pid, "alive": f.process.poll() is None,
                           "restarts": f.restarts, "last_exit_code": f.last_exit}
                    for name, f in self.functions.items()}


def _reachable(hostport: str | None) -> bool:
    if not hostport or ":" not in hostport:
        return False
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_SECONDS):
            return True
    except (OSError, ValueError):
        return False


def backends(config: Config) -> dict[str, str]:
    """``{backend: "reachable" | "unreachable"}`` for what ``config`` uses."""
    if config.backend == "emulator":
        probes = {"firestore": _reachable(config.firestore_emulator_host),
                  "pubsub": _reachable(config.pubsub_emulator_host)}
    else:
        state = Path(config.state_dir)
        probes = {"sqlite": state.is_dir() and all(
            (state / name).exists() for name in ("business.db", "vault.db", "bus.db"))}
    return {name: "reachable" if ok else "unreachable" for name, ok in probes.items()}


def health(config: Config, functions: Mapping[str, Mapping[str, Any]] | None) -> dict:
    """The ``/healthz`` body's status part (see the module docstring)."""
    reach = backends(config)
    down = sorted(name for name, f in (functions or {}).items() if not f["alive"])
    unreachable = sorted(name for name, state in reach.items() if state != "reachable")
    return {"status": "degraded" if down or unreachable else "ok", "backends": reach,
            "functions_down": down, "backends_unreachable": unreachable}
