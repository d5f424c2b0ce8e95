"""`make run`'s stack, started as a real process: health, routing, bus wiring, clean stop.

The embedded variant runs everything in one process; the emulator variant runs the
production topology (official emulators, one functions-framework process per function, push
subscriptions). Both prove a scheduler tick travels bus → HTTP push → function → store.
"""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from keyway.emulators import free_port
from shared.clock import isoformat
from shared.components import COMPONENTS

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    full = {**os.environ, **env, "PORT": str(port), "KEYWAY_TICK_SECONDS": "1",
            "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "keyway", "run"], cwd=ROOT, env=full,
                                   stdout=out, stderr=subprocess.STDOUT)
    process.keyway_env = {**env, "PORT": str(port)}
    return process


def _dev_token(process: subprocess.Popen, tenant: str = "t-1", user: str = "u-1",
               role: str = "admin") -> str:
    """`keyway dev token` against the running stack's state dir."""
    env = {**os.environ, **process.keyway_env, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "keyway", "dev", "token", "--tenant", tenant,
                          "--user", user, "--role", role], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def _connect_in_the_sandbox(port: int, token: str, provider: str, **body) -> str:
    """A newcomer's first connection, over real HTTP: api → simulator → oauth-P → back
    (``github_app=True``: through the sandbox GitHub App's install page)."""
    base = f"http://127.0.0.1:{port}"
    started = requests.post(f"{base}/api/v1/connections", json={"provider": provider, **body},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert started.status_code == 201, started.text
    browser = requests.Session()  # keeps the flow's cookie from keyway's start step
    landing = _signed_in(browser, browser.get(started.json()["authorize_url"], timeout=30))
    assert landing.status_code == 200 and landing.url.startswith(f"{base}/api/v1/connect-result")
    assert landing.json()["status"] == "connected", landing.json()
    listed = requests.get(f"{base}/api/v1/connections", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}).json()["items"]
    assert started.json()["connection"] in [c["id"] for c in listed]
    return started.json()["connection"]


def _signed_in(browser: requests.Session, page: requests.Response,
               login: str | None = None) -> requests.Response:
    """Through a simulator's sign-in page, as a person clicks it in ``browser``: the link for
    ``login`` (the first account when None), followed to wherever it leads. Any other page
    passes through."""
    if "<h1>Sign in</h1>" not in page.text:
        return page
    links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.text)]
    assert len(links) >= 2, "every simulator offers two accounts"
    chosen = next(link for link in links if login is None
                  or parse_qs(urlsplit(link).query)["login"] == [login])
    return browser.get(chosen, timeout=30)


def _comment_as_a_member(port: int, store, connection: str, process: subprocess.Popen) -> None:
    """A member links an identity as the simulator's second account and comments: the comment
    is recorded as that account's, not the admin's who connected."""
    base, member = f"http://127.0.0.1:{port}", _dev_token(process, user="u-2", role="member")
    auth = {"Authorization": f"Bearer {member}"}
    started = requests.post(f"{base}/api/v1/identities", json={"provider": "github"},
                            headers=auth, timeout=10)
    assert started.status_code == 201, started.text
    browser, start = requests.Session(), started.json()["authorize_url"]
    form = browser.get(start, timeout=10)  # an identity link asks who you are first
    assert form.status_code == 200 and 'name="access_token"' in form.text
    proof = {"state": parse_qs(urlsplit(start).query)["state"][0], "access_token": member}
    landing = _signed_in(browser, browser.post(start.split("?")[0], data=proof, timeout=30),
                         "hubot")
    assert landing.json()["status"] == "connected", landing.json()
    public = next(s for s in store.query("repositories")
                  if s.data["connection"] == connection and not s.data["private"])
    pull = next(s for s in store.query("pull_requests") if s.data["repository"] == public.id)
    asked = requests.post(f"{base}/api/v1/actions", headers=auth, timeout=10, json={
        "connection": connection, "kind": "comment", "body": "Signed by hubot",
        "target": {"repository": public.id, "parent_kind": "pull_request",
                   "number": pull.data["number"]}})
    assert asked.status_code == 202, asked.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        action = requests.get(f"{base}/api/v1/actions/{asked.json()['id']}", headers=auth,
                              timeout=10).json()
        if action["status"] != "pending":
            break
        time.sleep(0.5)
    assert action["status"] == "done", action
    posted = [s.data for s in store.query("comments") if s.data["connection"] == connection
              and s.data["body"].startswith("Signed by hubot")]
    assert [c["author"]["login"] for c in posted] == ["hubot"]


def _wait_first_sync(store, connection: str, timeout: float = 90) -> dict[str, list[dict]]:
    """oauth-P → vault-P → sealed token → fetch-P → records of ``connection``, over the bus;
    returns its repositories and pull requests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.get("sync_status", connection) or {}
        if status.get("state") == "done":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the first sync did not finish: {store.get('sync_status', connection)}")
    return {kind: [s.data for s in store.query(kind) if s.data["connection"] == connection]
            for kind in ("repositories", "pull_requests")}


def _pulls_by_repository(synced: dict[str, list[dict]]) -> dict[str, int]:
    names = {r["id"]: r["full_name"] for r in synced["repositories"]}
    counts: dict[str, int] = {}
    for pull in synced["pull_requests"]:
        counts[names[pull["repository"]]] = counts.get(names[pull["repository"]], 0) + 1
    return counts


def _check_what_each_github_connection_reads(oauth: dict, installation: dict) -> None:
    """The seeded organisation has 3 repositories, the third private, and 60 pull requests.
    The sandbox's OAuth App token (no ``repo`` scope) reads the public ones only; the App
    installation reads all three — and the same pull requests where both can look."""
    assert len(installation["repositories"]) == 3
    assert len(installation["pull_requests"]) == 60
    public = {r["full_name"] for r in installation["repositories"] if not r["private"]}
    assert len(public) == 2
    assert {r["full_name"] for r in oauth["repositories"]} == public
    everything = _pulls_by_repository(installation)
    assert _pulls_by_repository(oauth) == {name: everything[name] for name in public}


def _wait_healthy(port: int, process: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"stack exited early:\n{log.read_text()[-3000:]}")
        try:
            response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except requests.RequestException:
            pass
        time.sleep(0.3)
    pytest.fail(f"stack never became healthy:\n{log.read_text()[-3000:]}")


def _due_connection(store) -> None:
    now = datetime.now(UTC)
    store.put("connections", "conn-1", {
        "tenant": "t-1", "provider": "github", "status": "active",
        "next_sync_at": isoformat(now - timedelta(seconds=5)), "interval_seconds": 900})


def _wait_sync_scheduled(store, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = store.get("connections", "conn-1")
        if doc and doc["next_sync_at"] > isoformat(datetime.now(UTC)):
            return doc
        time.sleep(0.3)
    pytest.fail("the scheduler never advanced the due connection")


def _exercise(port: int, backend: str, store, process: subprocess.Popen, log: Path) -> None:
    health = _wait_healthy(port, process, log)
    assert health["backend"] == backend
    assert {f["name"] for f in health["functions"]} == set(COMPONENTS)
    api = requests.get(f"http://127.0.0.1:{port}/api/v1/connections", timeout=10)
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/problem+json")
    token = _dev_token(process)
    api = requests.get(f"http://127.0.0.1:{port}/api/v1/connections", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and api.json() == {"items": []}, api.text
    webhook = requests.post(f"http://127.0.0.1:{port}/webhook-github/", timeout=10)
    assert webhook.status_code == 401  # unsigned: refused before the body is parsed
    assert webhook.json()["code"] == "webhook.github.missing_signature"
    forged = requests.post(f"http://127.0.0.1:{port}/scheduler/projects/p/topics/refresh-ticks",
                           json={"message": {"data": "", "messageId": "forged"}}, timeout=10)
    assert forged.status_code == 401  # a push without the local push credential
    assert forged.json()["code"] == "runner.push_unauthorized"
    assert set(health["sandbox_providers"]) == {"github", "gitlab", "bitbucket", "jira"}
    connected = {provider: _connect_in_the_sandbox(port, token, provider)
                 for provider in ("github", "bitbucket")}
    synced = {provider: _wait_first_sync(store, connection)
              for provider, connection in connected.items()}
    assert (len(synced["bitbucket"]["repositories"]), len(synced["bitbucket"]["pull_requests"])
            ) == (3, 60)
    _comment_as_a_member(port, store, connected["github"], process)
    # another tenant: records are keyed by tenant, so t-1's would already hold these
    installed = _connect_in_the_sandbox(port, _dev_token(process, "t-2"), "github",
                                        github_app=True)
    assert store.get("connections", installed)["installation_id"]
    _check_what_each_github_connection_reads(synced["github"], _wait_first_sync(store, installed))
    missing = requests.get(f"http://127.0.0.1:{port}/nowhere", timeout=10)
    assert missing.status_code == 404
    _due_connection(store)
    _wait_sync_scheduled(store)


def _stop_and_check(process: subprocess.Popen) -> None:
    children = _children(process.pid)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    time.sleep(0.5)
    alive = {pid for pid in children if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]}
    assert alive == set(), f"processes left running after Ctrl-C: {alive}"


def test_embedded_stack_serves_every_function_and_delivers_ticks(tmp_path: Path) -> None:
    from shared.adapters.embedded.sqlite_store import SqliteDocumentStore

    port, state, log = free_port(), tmp_path / "state", tmp_path / "run.log"
    process = _start({"KEYWAY_BACKEND": "embedded", "KEYWAY_STATE_DIR": str(state)}, port, log)
    try:
        _wait_healthy(port, process, log)
        assert (state / "keys").is_dir() and (state / "secrets.json").exists()
        assert oct((state / "secrets.json").stat().st_mode & 0o777) == "0o600"
        _exercise(port, "embedded", SqliteDocumentStore(state / "business.db"), process, log)
    finally:
        if process.poll() is None:
            _stop_and_check(process)
    assert process.returncode is not None


@pytest.mark.emulator
def test_emulator_stack_runs_production_topology(tmp_path: Path, emulator_env, unique_project):
    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

    port, state, log = free_port(), tmp_path / "state", tmp_path / "run.log"
    env = {"KEYWAY_BACKEND": "emulator", "KEYWAY_STATE_DIR": str(state),
           "KEYWAY_PROJECT": unique_project, **emulator_env}
    process = _start(env, port, log)
    try:
        _exercise(port, "emulator", FirestoreDocumentStore(unique_project), process, log)
        assert len(_children(process.pid)) >= len(COMPONENTS)
    finally:
        if process.poll() is None:
            _stop_and_check(process)
