"""Start and stop the official Firestore and Pub/Sub emulators from google-cloud-cli.

Used by ``make run BACKEND=emulator`` and by the test fixtures. The emulators need Java 17 and
google-cloud-cli's emulator components; :func:`find_sdk_root` explains what is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FIRESTORE_READY = "Dev App Server is now running."
PUBSUB_READY = "Server started, listening on"


class EmulatorUnavailable(RuntimeError):
    """The emulators cannot run on this machine; the message says what is missing."""


def find_sdk_root() -> Path:
    if not shutil.which("java"):
        raise EmulatorUnavailable("java is not on PATH (the emulators need Java 17)")
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise EmulatorUnavailable("gcloud is not on PATH (install google-cloud-cli)")
    env = dict(os.environ, CLOUDSDK_CONFIG=tempfile.mkdtemp(prefix="keyway-gcloud-"))
    out = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    root = Path(out.stdout.strip())
    if out.returncode != 0 or not root.is_dir():
        raise EmulatorUnavailable(f"gcloud info failed: {out.stderr.strip()[:200]}")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports: all held at once while chosen (successive
    :func:`free_port` calls may hand out one port twice before anything binds it)."""
    held = [socket.socket() for _ in range(count)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def port_taken(port: int) -> bool:
    """Whether something else holds loopback ``port`` (a listener, or a connection's end)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class Emulator:
    name: str
    host: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@dataclass
class Emulators:
    firestore: Emulator | None = None
    pubsub: Emulator | None = None
    started: list[Emulator] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.firestore:
            out["FIRESTORE_EMULATOR_HOST"] = self.firestore.host
        if self.pubsub:
            out["PUBSUB_EMULATOR_HOST"] = self.pubsub.host
        return out

    def stop(self) -> None:
        for emulator in reversed(self.started):
            emulator.stop()


def _start(name: str, argv: list[str], ready: str, port: int, log_dir: Path,
           timeout: float) -> Emulator:
    log_path = log_dir / f"{name}-emulator.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    env = dict(os.environ, CLOUDSDK_CONFIG=tempfile.mkdtemp(prefix="keyway-gcloud-"))
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    emulator = Emulator(name, f"127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if ready in log_path.read_text(errors="replace"):
            return emulator
        time.sleep(0.1)
    emulator.stop()
    tail = log_path.read_text(errors="replace")[-600:]
    raise EmulatorUnavailable(f"{name} emulator did not become ready: {tail}")


# name, the executable under the SDK root, its readiness line, its name in error messages
_EMULATORS = (
    ("firestore", "platform/cloud-firestore-emulator/cloud_firestore_emulator", FIRESTORE_READY,
     "Firestore"),
    ("pubsub", "platform/pubsub-emulator/bin/cloud-pubsub-emulator", PUBSUB_READY, "Pub/Sub"),
)


def start_one(name: str, log_dir: Path, port: int | None = None,
              timeout: float = 60.0) -> Emulator:
    """One emulator (``firestore`` or ``pubsub``) on ``port`` (a free one when None) — so a
    test can stop it by its process and start it again where its clients point."""
    [(executable, ready, label)] = [(e, r, lb) for n, e, r, lb in _EMULATORS if n == name]
    path = find_sdk_root() / executable
    if not path.exists():
        raise EmulatorUnavailable(f"{label} emulator missing at {path}")
    log_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    return _start(name, [str(path), "--host=127.0.0.1", f"--port={port}"], ready, port,
                  log_dir, timeout)


def start(log_dir: Path, *, firestore: bool = True, pubsub: bool = True,
          timeout: float = 60.0) -> Emulators:
    """Start the requested emulators on free loopback ports and wait until they are ready."""
    root = find_sdk_root()
    log_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"firestore": firestore, "pubsub": pubsub}
    result = Emulators()
    try:
        for name, executable, ready, label in _EMULATORS:
            if not wanted[name]:
                continue
            path = root / executable
            if not path.exists():
                raise EmulatorUnavailable(f"{label} emulator missing at {path}")
            port = free_port()
            emulator = _start(name, [str(path), "--host=127.0.0.1", f"--port={port}"],
                              ready, port, log_dir, timeout)
            setattr(result, name, emulator)
            result.started.append(emulator)
    except BaseException:
        result.stop()
        raise
    return result
