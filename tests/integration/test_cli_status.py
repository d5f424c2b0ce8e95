"""`keyway connections status`, run as a real process against a state dir: one line per
connection with its health, progress bars and the ETA while it syncs, redrawn with --watch
until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from requests.structures import CaseInsensitiveDict

from shared import bootstrap
from shared.config import Config
from shared.fetch import status
from shared.fetch.client import ApiResponse
from shared.fetch.github.plan import PLAN
from shared.fetch.progress import Progress
from shared.fetch.walk import Stats
from tests.integration.test_cli import ROOT, keyway

FRESH = "2026-12-07T05:00:00.000000Z"


def seeded(state: Path) -> None:
    """acme: one connection mid-sync (its progress as a run writes it), one active; another
    tenant's connection."""
    ports = bootstrap.build(Config.from_env({"KEYWAY_STATE_DIR": str(state)}))
    for conn, tenant, provider in (("c-sync", "acme", "github"), ("c-idle", "acme", "gitlab"),
                                   ("c-else", "other", "jira")):
        ports.business.put("connections", conn, {"tenant": tenant, "provider": provider,
                                                 "kind": "app", "status": "active"})
    ports.business.put("sync_status", "c-idle", {"tenant": "acme", "state": "done",
                                                 "last_success_at": FRESH})
    ports.business.put("connections", "c-idle", {
        **ports.business.get("connections", "c-idle"),
        "freshness": {"fresh_as_of": {"repositories": "2026-12-07T06:00:00.000000Z",
                                      "issues": FRESH}, "never": {"issues": 0}}})
    owner = status.begin(ports, "acme", "c-sync")
    stats = Stats()
    progress = Progress(ports, "c-sync", owner, interval=0.0)
    progress.attach(stats, "link_header")
    progress.repositories({spec.name: 2 for spec in PLAN.resources})
    progress.finished(PLAN.resources[0], repository_level=True)  # one repository's pulls done
    stats.requests = 2
    last = '<https://api.github.com/r?page=2>; rel="next", <https://api.github.com/r?page=4>;' \
           ' rel="last"'
    progress.page(PLAN.resources[0], ApiResponse(200, [{}] * 100, None, None, False,
                                                 CaseInsensitiveDict({"Link": last})),
                  exact=True, repository_level=True)


def test_status_shows_health_and_while_syncing_a_bar_per_list_and_the_eta(tmp_path):
    state = tmp_path / "state"
    seeded(state)
    shown = keyway(state, "connections", "status", "--tenant", "acme")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    syncing = next(i for i, line in enumerate(lines) if "c-sync" in line)
    assert "github" in lines[syncing] and "syncing" in lines[syncing]
    assert "ETA ≥ " in lines[syncing] and "req/s" in lines[syncing]
    pulls = next(line for line in lines if line.strip().startswith("pulls"))
    assert "[############------------]" in pulls  # 1 of 2 repositories
    assert "1/2 repositories" in pulls and "100 items" in pulls and "3 pages left" in pulls
    issues = next(line for line in lines if line.strip().startswith("issues"))
    assert "[------------------------]" in issues and "0/2 repositories" in issues
    idle = next(line for line in lines if "c-idle" in line)
    assert "active" in idle and "fresh as of 2026-12-07 05:00 UTC (oldest kind: issues)" in idle
    assert "c-else" not in shown.stdout
    everyone = keyway(state, "connections", "status").stdout
    assert "other/c-else  jira  connecting  never complete yet" in everyone
    nobody = keyway(state, "connections", "status", "--tenant", "nobody")
    assert nobody.returncode == 0 and "no connections for tenant nobody" in nobody.stdout
    bad = keyway(state, "connections", "status", "--watch", "--interval", "0")
    assert bad.returncode == 2 and "--interval" in bad.stderr


def test_watch_redraws_in_place_until_ctrl_c(tmp_path):
    state = tmp_path / "state"
    seeded(state)
    env = {**os.environ, "KEYWAY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("KEYWAY_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", "keyway", "connections", "status",
                             "--tenant", "acme", "--watch", "--interval", "0.1"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frames, seen = 0, []
        while frames < 2:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            seen.append(line)
            frames += "c-sync" in line
        redrawn = [line for line in seen if line.startswith("\x1b[")]
        assert redrawn and "F\x1b[Jacme/" in redrawn[0]  # back up over the frame, clear, draw
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
