"""``keyway connections status``: one line per connection with its health, and while it syncs
a progress bar per list and the ETA, read from the business store (no api, no token).

    acme/0f3c…  github  syncing  3.2 req/s  ETA ≥ 1m40s
      repositories     [########################]  2 items
      pulls            [############------------]  1/2 repositories  100 items  1 page left
    acme/7d21…  gitlab  active  fresh as of 2026-12-07 05:54 UTC (oldest kind: issues)

A list's bar is the share of its repositories whose walk this round finished (the
connection-level list: its pages read against those left). ``--watch`` redraws in place every
``--interval`` seconds until Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from shared import freshness, health
from shared.ports import Filter, Ports

BAR = 24


def bar(done: float) -> str:
    filled = round(max(0.0, min(done, 1.0)) * BAR)
    return "[" + "#" * filled + "-" * (BAR - filled) + "]"


def duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes \
        else f"{secs}s"


def _share(entry: dict[str, Any]) -> float:
    total = entry.get("repositories")
    if total:
        return (entry.get("repositories_done") or 0) / total
    if total == 0:
        return 1.0
    left = entry.get("pages_left")
    if not entry.get("walking"):
        return 1.0 if entry.get("pages") or left == 0 else 0.0
    return entry["pages"] / (entry["pages"] + left) if left is not None else 0.0


def list_line(name: str, entry: dict[str, Any]) -> str:
    parts = [f"  {name:<16} {bar(_share(entry))}"]
    if entry.get("repositories") is not None:
        parts.append(f"{entry.get('repositories_done') or 0}/{entry['repositories']} "
                     "repositories")
    parts.append(f"{entry.get('items', 0)} items")
    if entry.get("walking"):
        left = entry.get("pages_left")
        parts.append("pages left unknown" if left is None else
                     f"{left} page{'s' if left != 1 else ''} left")
    return "  ".join(parts)


def _eta(progress: dict[str, Any]) -> str:
    seconds = progress.get("eta_seconds")
    if seconds is None:
        return "ETA unknown"
    return f"ETA {'≥ ' if progress.get('eta_is_lower_bound') else ''}{duration(seconds)}"


def _fresh(doc: dict[str, Any]) -> str:
    times = {k: v for k, v in freshness.connection_view(doc)["fresh_as_of"].items() if v}
    if not times:
        return "never complete yet"
    kind = min(times, key=lambda k: times[k])
    return f"fresh as of {times[kind][:16].replace('T', ' ')} UTC (oldest kind: {kind})"


def connection_lines(conn_id: str, doc: dict[str, Any], sync: dict[str, Any] | None,
                     now: Any) -> list[str]:
    view = health.view(doc, sync, now)
    head = [f"{doc.get('tenant')}/{conn_id}", str(doc.get("provider")), view["state"]]
    if view.get("reason"):
        head.append(f"({view['reason']})")
    progress = view.get("progress")
    if view["state"] != "syncing" or not progress:
        return ["  ".join(head + [_fresh(doc)])]
    pace = progress.get("requests_per_second")
    head += [f"{pace:.1f} req/s" if pace else "pace not measured yet", _eta(progress)]
    return ["  ".join(head)] + [list_line(name, entry)
                                for name, entry in (progress.get("lists") or {}).items()]


def render(ports: Ports, tenant: str | None) -> list[str]:
    where = [Filter("tenant", "==", tenant)] if tenant else []
    snaps = sorted(ports.business.query("connections", where),
                   key=lambda s: (str(s.data.get("tenant")), s.id))
    now = ports.clock.now()
    lines: list[str] = []
    for snap in snaps:
        lines += connection_lines(snap.id, snap.data,
                                  ports.business.get("sync_status", snap.id), now)
    return lines or [f"no connections{f' for tenant {tenant}' if tenant else ''}"]


def watch(frame: Callable[[], list[str]], interval: float, out: TextIO = sys.stdout,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Draw ``frame()`` every ``interval`` seconds, over the previous one, until Ctrl-C."""
    drawn = 0
    try:
        while True:
            lines = frame()
            if drawn:
                out.write(f"\x1b[{drawn}F\x1b[J")  # back to the first line drawn, clear below
            out.write("\n".join(lines) + "\n")
            out.flush()
            drawn = len(lines)
            sleep(interval)
    except KeyboardInterrupt:
        return 0
