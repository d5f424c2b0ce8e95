"""``<state_dir>/stack.json``: what a running ``keyway run`` serves, for the CLI to find.

The runner writes it once every function is up and removes it when it stops: its process id,
port, public URL and the local issuer and audience its api accepts. ``keyway dev token`` reads
it so the token it prints is one that stack accepts (a stack started with another ``PORT``
has another issuer URL), and says so plainly when no stack runs from that state directory.
Nothing secret is in it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from shared.config import Config

NAME = "stack.json"


@dataclass(frozen=True)
class Stack:
    pid: int
    port: int
    public_url: str
    auth_issuer: str
    auth_audience: str


def write_stack_file(config: Config) -> Path:
    path = Path(config.state_dir) / NAME
    body = {"pid": os.getpid(), "port": config.port, "public_url": config.public_url,
            "auth_issuer": config.auth_issuer, "auth_audience": config.auth_audience}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)
    return path


def remove_stack_file(config: Config) -> None:
    path = Path(config.state_dir) / NAME
    stack = running_stack(config.state_dir)
    if stack is None or stack.pid == os.getpid():
        path.unlink(missing_ok=True)


def running_stack(state_dir: Path | str) -> Stack | None:
    """The stack serving from ``state_dir``, or ``None`` (no file, unreadable, or its process
    is gone)."""
    try:
        raw = json.loads((Path(state_dir) / NAME).read_text())
        stack = Stack(int(raw["pid"]), int(raw["port"]), str(raw["public_url"]),
                      str(raw["auth_issuer"]), str(raw["auth_audience"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return stack if _alive(stack.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
