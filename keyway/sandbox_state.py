"""What the ``make run`` sandbox keeps across restarts: ``<state_dir>/sandbox.json``.

Each sandbox simulator's port and the tokens it issued (:mod:`keyway.simulators.oauth_snapshot`),
so connections made before a restart still reach their simulator and their stored tokens are
still known there: a connection stores the provider's API base URL, which names the port. A
port another process took meanwhile is not fought over: the simulator gets a free one and the
connections made against the old port answer as an unreachable provider would (reconnect).
The file is 0600 and holds only the simulated providers' own records; it is rewritten on every
scheduler tick and at shutdown.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keyway.simulators import Simulator
from keyway.simulators.oauth_snapshot import restore, snapshot
from shared.log import get_logger

NAME = "sandbox.json"
log = get_logger("keyway.sandbox")


def load(state_dir: Path | str) -> dict[str, Any]:
    try:
        data = json.loads((Path(state_dir) / NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def port_for(saved: Mapping[str, Any], provider: str) -> int:
    """The provider's former port when it is free again, else 0 (any free port)."""
    port = (saved.get(provider) or {}).get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            log.warning("runner.sandbox_port_taken", extra={"fields": {
                "provider": provider, "port": port}})
            return 0
    return port


def restore_tokens(simulator: Simulator, saved: Mapping[str, Any], provider: str) -> None:
    entry = saved.get(provider) or {}
    if entry.get("port") == simulator.port and isinstance(entry.get("oauth"), dict):
        restore(simulator.oauth, entry["oauth"])


def save(state_dir: Path | str, simulators: Mapping[str, Simulator]) -> None:
    path = Path(state_dir) / NAME
    body = {p: {"port": s.port, "oauth": snapshot(s.oauth)} for p, s in simulators.items()}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    tmp.replace(path)
