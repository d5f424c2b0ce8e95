"""A GitHub App installation syncs end to end, on the embedded and the emulator backend: the
install flow through the real api and oauth-github functions (the simulator's own install
page), vault-github minting an installation token, fetch-github listing the installation's
repositories (``GET /installation/repositories``, never ``/user/repos``, which GitHub refuses
to installation tokens) and syncing a private repository's pull requests, issues, comments,
reviews (GraphQL) and labels; a second sync spends no REST and no GraphQL point.
"""

from __future__ import annotations

import time

import pytest

from keyway.simulators.github_tokens import NOT_FOR_INSTALLATIONS
from shared import messages, policy
from shared.clock import isoformat
from shared.entry import event_function
from shared.routing import handlers_for
from tests.integration.conftest import _reset_caches, build_stack, query_of
from tests.integration.test_connect_flow import authorize, begin, finish
from tests.integration.test_github_app_connect import (
    ADMIN,
    GRANTED,
    INSTALLATION,
    OCTOCAT,
    TENANT,
    app_key,  # noqa: F401 - a fixture
    github_with_app,
)
from tests.unit.test_entry import pubsub_event

PRIVATE, PUBLIC, OUTSIDE = "acme/repo-0003", "acme/repo-0001", "acme/repo-0002"
BOT = 41_000_000 + INSTALLATION  # the installation's bot account: its rate-limit key


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def backend_stack(request, tmp_path, monkeypatch, leak_guard):
    env: dict[str, str] = {}
    if request.param == "emulator":
        env = {**request.getfixturevalue("emulator_env"), "KEYWAY_BACKEND": "emulator",
               "KEYWAY_PROJECT": request.getfixturevalue("unique_project")}
    yield build_stack(tmp_path, monkeypatch, leak_guard, backend_env=env)
    _reset_caches()


@pytest.fixture
def installed(backend_stack, monkeypatch, leak_guard, app_key):  # noqa: F811
    """An app (with its own OAuth client) installed on two of acme's three repositories, one
    of them private."""
    sim = github_with_app(backend_stack, monkeypatch, leak_guard, app_key)
    sim.seed_activity("acme", repos=3, prs=12, issues=9, comments=30, reviews=15, labels=4)
    sim.apps.add_installation(INSTALLATION, "acme", GRANTED, users=[OCTOCAT.id],
                              repositories=[PUBLIC, PRIVATE])
    yield backend_stack, sim
    sim.stop()


def connect(stack, sim) -> str:
    """The admin installs the app: keyway's authorize URL is the simulator's install page."""
    started = begin(stack, "github", stack.token(TENANT, ADMIN, "admin"), github_app=True)
    done = finish(stack, "github", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["status"] == "connected"
    return started["connection"]


def drain(stack, topic: str, until: float = 20.0) -> int:
    """Hand every message on ``topic`` to its subscriber (waiting a little for the emulator,
    whose pull may come back empty right after a publish)."""
    subscriber = policy.ROUTES[topic].subscriber
    receive = event_function(subscriber, handlers_for(subscriber))
    handled, deadline = 0, time.monotonic() + until
    while time.monotonic() < deadline:
        got: list = []
        stack.ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
        for m in got:
            inbound = messages.decode(topic, m.data, m.attributes, m.message_id)
            receive(pubsub_event(topic, inbound.sender, inbound.type, inbound.body))
        handled += len(got)
        if handled and not got:
            return handled
        time.sleep(0.05 if got else 0.2)
    return handled


def sync(stack, connection: str, first: bool = False) -> None:
    if not first:
        messages.publish(stack.ports.bus, "scheduler", "sync-requests-github",
                         "sync.requested", {"tenant": TENANT, "connection": connection,
                                            "scope": "all", "reason": "scheduled",
                                            "requested_at": isoformat(stack.ports.clock.now())},
                         ordering_key=connection)
    assert drain(stack, "sync-requests-github") >= 1
    assert drain(stack, "fetch-jobs-github") >= 1


def records(stack, kind: str, connection: str) -> list[dict]:
    return [s.data for s in stack.ports.business.query(kind)
            if s.data.get("connection") == connection and not s.data.get("deleted")]


def test_an_installation_syncs_a_private_repository_then_resyncs_for_free(installed):
    stack, sim = installed
    connection = connect(stack, sim)
    connected = len(sim.requests_log)  # the install flow's user token did /user, etc.
    sync(stack, connection, first=True)
    repos = {r["full_name"]: r for r in records(stack, "repositories", connection)}
    assert set(repos) == {PUBLIC, PRIVATE} and repos[PRIVATE]["private"] is True  # not OUTSIDE
    private_id = next(s.id for s in stack.ports.business.query("repositories")
                      if s.data.get("full_name") == PRIVATE)
    wanted = {k: [r for r in records(stack, k, connection) if r.get("repository") == private_id]
              for k in ("pull_requests", "issues", "comments", "reviews", "labels")}
    act = sim.activity.find("acme", "repo-0003")
    assert len(wanted["pull_requests"]) == len(act.pulls.items) > 0
    assert len(wanted["issues"]) == len(act.threads.items) - len(act.pulls.items) > 0
    assert len(wanted["labels"]) == 4
    assert len(wanted["comments"]) == len(act.comments.items) > 0
    assert len(wanted["reviews"]) == sum(len(r) for r in act.reviews.values()) > 0
    synced = sim.requests_log[connected:]
    called = {r.template for r in synced}
    assert "/installation/repositories" in called
    assert not {t.split(" ", 1)[1] for t in NOT_FOR_INSTALLATIONS} & called
    assert {r.status for r in synced} <= {200, 201}  # nothing refused
    assert not [t for t in called if t.endswith("/hooks")]  # no registrar: the App's own hook
    assert sim.graphql_points_used(BOT) > 0
    rest, graphql = sim.quota_used(BOT), sim.graphql_points_used(BOT)
    sync(stack, connection)
    assert sim.quota_used(BOT) == rest  # every list answered 304
    assert sim.graphql_points_used(BOT) == graphql  # no pull request changed: no review query
    assert stack.ports.business.get("connections", connection)["status"] == "active"
