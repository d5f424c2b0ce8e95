"""No hot document: a representative full sync of GitHub and of GitLab (simulators, embedded
store, with its sync lease, progress and rate budget as the fetch handler runs it) writes no
document more than once per second on average over any 10-second window — Firestore's
documented sustained write rate per document. The write-recording store would catch the
per-request budget (checked below), so a regression fails here."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.bootstrap import build
from shared.config import Config
from shared.fetch import status
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.fetch.progress import Progress
from shared.fetch.sync import SyncRun
from shared.providers import registry
from tests.store_wrappers import WriteRecorder

SCALE = {"repos": 3, "prs": 900, "issues": 900, "comments": 4000, "labels": 10}
SMALL = {"repos": 1, "prs": 120, "issues": 120, "comments": 200}
CASES = {"github": (GitHubSimulator, GITHUB_PLAN, ("repo",), "acme"),
         "gitlab": (GitLabSimulator, GITLAB_PLAN, ("read_api",), "acme-group")}


def full_sync(tmp_path, provider: str, scale: dict, *, blocks: bool, leak_guard):
    simulator, plan, scopes, owner = CASES[provider]
    sim = simulator(rate_limit=10_000_000).start()
    try:
        sim.seed_activity(owner, **scale)
        token = leak_guard.track(sim.mint_token(scopes=scopes).access_token)
        built = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
        recorder = WriteRecorder(built.business)
        ports = dataclasses.replace(built, business=recorder)
        budget = TokenBudget(ports.business, ports.clock, budget_key(provider, "conn-1"),
                             blocks=blocks)
        client = ProviderClient(registry.get(provider), sim.api_url, token, requests.Session(),
                                ports.clock, budget, timeout=30.0, purpose="fetch")
        owner_id = status.begin(ports, "t-1", "conn-1", timedelta(minutes=10))
        run = SyncRun(ports, client, plan, "t-1", "conn-1", 600.0,
                      progress=Progress(ports, "conn-1", owner_id, budget))
        result = run.run()
        budget.close()
        status.end(ports, "conn-1", owner_id, "done", stats=vars(run.stats))
        return result, recorder
    finally:
        sim.stop()


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_a_full_sync_writes_no_document_more_than_once_a_second(tmp_path, provider,
                                                                 leak_guard) -> None:
    result, recorder = full_sync(tmp_path, provider, SCALE, blocks=True, leak_guard=leak_guard)
    assert result.finished
    assert result.stats.by_kind["comments"] == SCALE["comments"]
    assert recorder.hot_documents() == {}
    budget_doc = ("rate_budgets", budget_key(provider, "conn-1"))
    assert 1 <= len(recorder.writes[budget_doc]) < result.stats.requests / 5


def test_the_per_request_budget_would_be_caught(tmp_path, leak_guard) -> None:
    _, recorder = full_sync(tmp_path, "github", SMALL, blocks=False, leak_guard=leak_guard)
    assert ("rate_budgets", budget_key("github", "conn-1")) in recorder.hot_documents()


def test_the_recorder_flags_eleven_writes_in_ten_seconds_but_not_ten(tmp_path) -> None:
    now = [0.0]
    recorder = WriteRecorder(SqliteDocumentStore(tmp_path / "s.db"), lambda: now[0])
    for n in range(10):
        recorder.put("cool", "a", {"n": n})
        recorder.put("warm", "b", {"n": n})
        now[0] += 0.99
    recorder.put("warm", "b", {"n": 10})  # the 11th within 9.9 s
    now[0] += 0.2
    for n in range(10):
        recorder.put("cool", "a", {"n": n})  # 10 s after the first: a new window
        now[0] += 1.0
    assert recorder.hot_documents() == {("warm", "b"): 11}
