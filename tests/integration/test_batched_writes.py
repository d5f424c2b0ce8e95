"""A sync writes a page at a time (one read, one conditional batch), and older data never
wins: a webhook that writes a newer version of a record between the page's read and its
batch keeps it, on the embedded store and on the Firestore emulator."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import requests

from keyway.simulators import GitHubSimulator
from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
from shared.bootstrap import build
from shared.config import Config
from shared.fetch import write as writes
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.github.plan import PLAN
from shared.fetch.sync import SyncRun
from shared.providers import registry
from shared.records import store as records
from tests.store_wrappers import Interleaving

SMALL = {"repos": 1, "prs": 40, "issues": 60, "comments": 120}
FUTURE = "2099-01-01T00:00:00.000000Z"
PAST = "2000-01-01T00:00:00.000000Z"


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def ports(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    built = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    if request.param == "emulator":
        request.getfixturevalue("emulator_env")
        business = FirestoreDocumentStore(request.getfixturevalue("unique_project"))
        built = dataclasses.replace(built, business=business)
    return built


@pytest.fixture(scope="module")
def sim():
    simulator = GitHubSimulator(rate_limit=1_000_000).start()
    simulator.seed_activity("acme", **SMALL)
    yield simulator
    simulator.stop()


def test_a_newer_webhook_write_between_read_and_batch_wins(ports) -> None:
    store = ports.business
    page = [{"id": f"t-1:github:issue:r%23{n}", "kind": "issues", "tenant": "t-1",
             "updated_at": f"2024-01-0{n}T00:00:00.000000Z", "title": "sync"} for n in (1, 2)]
    raced: list[bool] = []

    def webhook(batch) -> None:
        if not raced:  # once: the webhook's upsert lands after the read, before the batch
            raced.append(records.upsert(store, {**page[0], "updated_at": FUTURE,
                                                "title": "webhook"}))

    written = writes.upsert_page(Interleaving(store, webhook), page)
    assert raced == [True]
    assert [r["id"] for r in written] == [page[1]["id"]]
    assert store.get("issues", page[0]["id"])["title"] == "webhook"
    assert store.get("issues", page[1]["id"])["title"] == "sync"


def test_a_sync_racing_webhooks_keeps_the_newer_version_and_overwrites_the_older(
        ports, sim, leak_guard) -> None:
    store, raced = ports.business, {}

    def webhooks(batch) -> None:
        issues = [w for w in batch if w.collection == "issues"]
        if issues and not raced:  # a newer version of one, an older one of another
            newer, older = issues[0], issues[1]
            raced["newer"] = records.upsert(store, {**newer.data, "updated_at": FUTURE,
                                                    "title": "from the webhook, newer"})
            raced["older"] = records.upsert(store, {**older.data, "updated_at": PAST,
                                                    "title": "from the webhook, older"})
            raced["ids"] = (newer.doc_id, older.doc_id, older.data["title"])

    racing = dataclasses.replace(ports, business=Interleaving(store, webhooks))
    token = leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)
    budget = TokenBudget(racing.business, racing.clock, budget_key("github", "conn-1"),
                         blocks=True)
    client = ProviderClient(registry.get("github"), sim.api_url, token, requests.Session(),
                            racing.clock, budget, timeout=10.0, purpose="fetch")
    result = SyncRun(racing, client, PLAN, "t-1", "conn-1", 600.0).run()
    budget.close()
    assert result.finished and raced["newer"] and raced["older"]
    newer_id, older_id, title = raced["ids"]
    assert store.get("issues", newer_id)["title"] == "from the webhook, newer"
    assert store.get("issues", newer_id)["updated_at"] == FUTURE
    assert store.get("issues", older_id)["title"] == title  # the sync's newer version
    assert result.stats.by_kind["issues"] == SMALL["issues"] - 1  # all but the newer one
