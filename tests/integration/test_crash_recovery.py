"""A real crash: `keyway run` is killed (SIGKILL, its whole process group) in the middle of a
connection's first sync and started again. With no operator action the sync completes, and the
records match the provider's data exactly — nothing lost, nothing twice — soon after the dead
run's lease ends: the first scheduler tick after it asks for the sync again, resuming from the
checkpoints (short lease, budget and tick set for the test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from keyway.emulators import free_port
from keyway.simulators import GitHubSimulator
from shared.clock import parse_iso
from tests.integration.test_local_stack import _dev_token, _signed_in, _wait_healthy

ROOT = Path(__file__).resolve().parents[2]
LEASE, BUDGET, TICK = 6, 2, 1
# About 25 processes share the machine in the emulator topology: under load a live run there
# can outlast a 6 s lease (and be asked for again while it runs), so that test's is longer.
EMULATOR_LEASE = 20
# A transaction the kill left open on the emulator can make the next run meet
# ``store.contention``; that run retries after KEYWAY_SYNC_RETRY_SECONDS (2 s here, 60 s by
# default), not after the test has given up.
SEED = {"repos": 3, "prs": 150, "issues": 150, "comments": 1500}
CLIENT, SECRET = "crash-client", "crash-client-secret"


@pytest.fixture
def provider():
    sim = GitHubSimulator(expiring_tokens=False).start()
    sim.sign_in_page()
    sim.seed_activity("acme", **SEED)
    yield sim
    sim.stop()


def start(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`keyway run` in its own process group, so a kill takes all of it."""
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "keyway", "run"], cwd=ROOT,
                                   env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    process.keyway_env = env
    return process


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def connect(port: int, token: str) -> str:
    base = f"http://127.0.0.1:{port}"
    started = requests.post(f"{base}/api/v1/connections", json={"provider": "github"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert started.status_code == 201, started.text
    browser = requests.Session()  # keeps the flow's cookie from keyway's start step
    landing = _signed_in(browser, browser.get(started.json()["authorize_url"], timeout=30))
    assert landing.json()["status"] == "connected", landing.json()
    return started.json()["connection"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def records(store, connection: str) -> dict[str, set]:
    """What keyway holds: (repository, number) of pull requests and issues, comment ids."""
    names = {s.id: s.data["full_name"] for s in store.query("repositories")
             if s.data["connection"] == connection and not s.data.get("deleted")}

    def of(kind: str) -> list[dict]:
        return [s.data for s in store.query(kind) if s.data["connection"] == connection
                and not s.data.get("deleted")]

    return {"pull_requests": {(names[d["repository"]], d["number"]) for d in of("pull_requests")},
            "issues": {(names[d["repository"]], d["number"]) for d in of("issues")},
            "comments": {d["external_id"] for d in of("comments")}}


def truth(sim: GitHubSimulator) -> dict[str, set]:
    """The same from the simulator, for the repositories the OAuth App token sees (public)."""
    acts = [a for a in sim.activity.repos.values() if not a.repo["private"]]
    return {"pull_requests": {(a.name, n) for a in acts for n, t in a.by_number.items()
                              if t["pull_id"] is not None},
            "issues": {(a.name, n) for a in acts for n, t in a.by_number.items()
                       if t["pull_id"] is None},
            "comments": {str(i) for a in acts for i in a.comments.items}}


def test_a_sync_killed_mid_run_completes_after_a_restart_with_nothing_lost_or_doubled(
        tmp_path, provider):
    from shared.adapters.embedded.sqlite_store import SqliteDocumentStore

    port, state, log = free_port(), tmp_path / "state", tmp_path / "run.log"
    provider.register_client(CLIENT, SECRET, [f"http://127.0.0.1:{port}/oauth-github/callback"])
    env = {"KEYWAY_BACKEND": "embedded", "KEYWAY_STATE_DIR": str(state), "PORT": str(port),
           "KEYWAY_GITHUB_CLIENT_ID": CLIENT, "KEYWAY_GITHUB_OAUTH_URL": provider.oauth_url,
           "KEYWAY_GITHUB_API_URL": provider.api_url, "KEYWAY_SECRET_GITHUB_CLIENT_SECRET":
           SECRET, "KEYWAY_SYNC_LEASE_SECONDS": str(LEASE), "KEYWAY_SYNC_RETRY_SECONDS": "2",
           "KEYWAY_SYNC_BUDGET_SECONDS": str(BUDGET), "KEYWAY_TICK_SECONDS": str(TICK)}
    process = start(env, log)
    try:
        _wait_healthy(port, process, log)
        store = SqliteDocumentStore(state / "business.db")
        provider.latency = 0.15  # a sync of several runs, so the kill lands inside one
        connection = connect(port, _dev_token(process))
        wait_for(lambda: records(store, connection)["comments"]
                 and (store.get("sync_status", connection) or {}).get("state") == "running",
                 60, "the sync to be under way")
        kill(process)
        partial = {kind: len(found) for kind, found in records(store, connection).items()}
        killed = store.get("sync_status", connection)
        # what the dead run left: nobody will end it (or, killed between two runs, a
        # continuation that nothing will deliver)
        assert killed["state"] in ("running", "continuing") and killed["recover_at"]
        restarted_at = time.monotonic()
        process = start(env, log)
        provider.latency = 0.0
        done = wait_for(lambda: (s := store.get("sync_status", connection) or {}).get(
            "state") in ("done", "failed") and s, LEASE + 60, "the sync to finish")
        took = time.monotonic() - restarted_at
    finally:
        if process.poll() is None:
            kill(process)
    assert (done["state"], done["attempt"]) == ("done", 0), done
    expected, got = truth(provider), records(store, connection)
    assert got == expected  # nothing lost, nothing extra
    assert partial["comments"] < len(expected["comments"])  # killed mid-sync
    counted = sum(len(store.query(kind)) for kind in ("pull_requests", "issues", "comments"))
    assert counted == sum(len(found) for found in expected.values())  # none twice
    # the dead run's lease ran out, the next tick asked again, the rest of the sync ran
    after_lease = parse_iso(done["finished_at"]) - parse_iso(killed["recover_at"])
    assert after_lease < timedelta(seconds=TICK + 20), after_lease
    assert took < LEASE + 30, f"done {took:.1f} s after the restart"


@pytest.mark.emulator
def test_a_fetch_process_killed_mid_sync_on_the_emulators_is_restarted_and_the_sync_completes(
        tmp_path, provider, emulator_env, unique_project):
    """The production topology (official emulators, one process per function): the fetch
    process dies mid-sync; the runner restarts it, the scheduler's tick asks for the sync again
    once the dead run's lease ends, and the records match the provider's exactly."""
    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

    port, state, log = free_port(), tmp_path / "state", tmp_path / "run.log"
    provider.register_client(CLIENT, SECRET, [f"http://127.0.0.1:{port}/oauth-github/callback"])
    env = {"KEYWAY_BACKEND": "emulator", "KEYWAY_STATE_DIR": str(state), "PORT": str(port),
           "KEYWAY_PROJECT": unique_project, **emulator_env,
           "KEYWAY_GITHUB_CLIENT_ID": CLIENT, "KEYWAY_GITHUB_OAUTH_URL": provider.oauth_url,
           "KEYWAY_GITHUB_API_URL": provider.api_url, "KEYWAY_SECRET_GITHUB_CLIENT_SECRET":
           SECRET, "KEYWAY_SYNC_LEASE_SECONDS": str(EMULATOR_LEASE),
           "KEYWAY_SYNC_RETRY_SECONDS": "2", "KEYWAY_SYNC_BUDGET_SECONDS": str(BUDGET),
           "KEYWAY_TICK_SECONDS": str(TICK)}
    process = start(env, log)
    try:
        health = _wait_healthy(port, process, log)
        fetch = next(f for f in health["functions"] if f["name"] == "fetch-github")
        store = FirestoreDocumentStore(unique_project)
        provider.latency = 0.15
        connection = connect(port, _dev_token(process))
        wait_for(lambda: records(store, connection)["comments"]
                 and (store.get("sync_status", connection) or {}).get("state") == "running",
                 90, "the sync to be under way")
        os.killpg(fetch["process"]["pid"], signal.SIGKILL)
        partial = len(records(store, connection)["comments"])
        provider.latency = 0.0
        done = wait_for(lambda: (s := store.get("sync_status", connection) or {}).get(
            "state") in ("done", "failed") and s, EMULATOR_LEASE + 120, "the sync to finish")
        restarted = next(f for f in requests.get(f"http://127.0.0.1:{port}/healthz",
                                                 timeout=5).json()["functions"]
                         if f["name"] == "fetch-github")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    assert restarted["process"]["restarts"] >= 1 and restarted["process"]["alive"]
    assert done["state"] == "done", {k: done.get(k) for k in ("state", "reason", "attempt")}
    expected, got = truth(provider), records(store, connection)
    assert got == expected and partial < len(expected["comments"])
    counted = sum(len(store.query(kind)) for kind in ("pull_requests", "issues", "comments"))
    assert counted == sum(len(found) for found in expected.values())
