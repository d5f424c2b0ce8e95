"""Convergence, end to end against the GitHub and Jira simulators over real HTTP: a connected
organisation synced once with its hooks registered; then, during and between incremental syncs,
the simulator loses 20 % of its webhook deliveries (seeded), deletes 1 % of the comments, issues
and labels (their delete webhooks subject to the same losses), transfers one repository out of
the connection's reach, and creates and edits records. After ONE reconciliation cycle as
production runs it — an incremental sync (with its count signals and the cycle it ends with),
and a scheduler round of the delivery-recovery job — keyway's live records equal the
simulator's truth exactly: no ghost, nothing lost, every tombstone with its reason, every event
applied once, and no full re-sync. Jira (one site, its dynamic webhook and the failed-deliveries
log): the same with 1 % of comments and issues deleted (Jira has no repository transfer and no
label deletion: labels are the ones in use)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from keyway.simulators import GitHubSimulator, JiraSimulator
from shared.fetch.client import ProviderClient
from shared.fetch.reconcile_state import COLLECTION as SWEEPS
from tests.integration.test_delivery_recovery import one_round, pump
from tests.integration.test_webhook_registration import _callback, connect

SEED = 19
DROP = 0.2  # of every webhook delivery attempt
SHARE = 0.01  # of each kind's items deleted
KINDS = {"comments", "issues", "labels", "pull_requests", "repositories", "reviews"}
#: the simulator's deletion kinds → keyway's record kinds
RECORD_KIND = {"comment": "comments", "review_comment": "comments", "issue": "issues",
               "pull": "pull_requests", "label": "labels", "review": "reviews"}


@pytest.fixture
def github(served, monkeypatch, leak_guard):
    sim = GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track,
                          rate_limit=1_000_000).start()
    sim.register_client("gh-client", "gh-client-secret-1", [_callback(served, "github")])
    served.provider_config(monkeypatch, "github", "gh-client", "gh-client-secret-1",
                           sim.oauth_url, sim.api_url)
    sim.seed_activity("acme", repos=6, prs=60, issues=200, comments=800, review_comments=60,
                      reviews=30, labels=20, seed=SEED)
    yield sim
    sim.stop()


def visible(sim: GitHubSimulator) -> list[dict]:
    """The repositories the connection reaches: its OAuth App token has no ``repo`` scope,
    so the private ones are out of its sight."""
    return [r for r in sim.data.list() or [] if not r["private"]]


def truth(sim: GitHubSimulator) -> set[tuple[str, str]]:
    """Every (kind, external id) the connection can see at the simulator now."""
    seen: set[tuple[str, str]] = set()
    for repo in visible(sim):
        seen.add(("repositories", str(repo["id"])))
        owner, _, name = repo["full_name"].partition("/")
        act = sim.activity.find(owner, name)
        for thread in act.by_number.values():
            if thread["pull_id"] is None:
                seen.add(("issues", str(thread["id"])))
            else:
                seen.add(("pull_requests", str(thread["pull_id"])))
        seen |= {("comments", str(i)) for i in act.comments.items}
        seen |= {("comments", str(i)) for i in act.review_comments.items}
        seen |= {("labels", str(label["id"])) for label in act.labels}
        seen |= {("reviews", str(r["id"])) for rs in act.reviews.values() for r in rs}
    return seen


def stored(ports, *, deleted: bool) -> dict[tuple[str, str], dict]:
    return {(kind, str(s.data["external_id"])): s.data for kind in KINDS
            for s in ports.business.query(kind) if bool(s.data.get("deleted")) is deleted}


def delete_share(sim: GitHubSimulator, rng: random.Random) -> list[tuple[str, int]]:
    """Delete ``SHARE`` (at least one) of the comments, issues and labels, through the
    simulator's delete operation, which sends each delete webhook through the delivery log."""
    gone = []
    for kind, pick in (("comment", _ids(sim, "comments")), ("issue", _ids(sim, "issues")),
                       ("label", _ids(sim, "labels"))):
        for ident in rng.sample(sorted(pick), max(1, round(len(pick) * SHARE))):
            assert sim.delete(kind, ident)
            gone.append((kind, ident))
    return gone


def _ids(sim: GitHubSimulator, what: str) -> list[int]:
    out = []
    for repo in visible(sim):
        act = sim.activity.find(*repo["full_name"].split("/"))
        if what == "comments":
            out += list(act.comments.items)
        elif what == "issues":
            out += [t["id"] for t in act.by_number.values() if t["pull_id"] is None]
        else:
            out += [label["id"] for label in act.labels]
    return out


def create_and_edit(sim: GitHubSimulator, rng: random.Random) -> None:
    """A few new comments and edited issues, pull requests and comments (no webhook: the
    incremental sync reads them)."""
    for repo in visible(sim)[:2]:
        act = sim.activity.find(*repo["full_name"].split("/"))
        number = rng.choice(sorted(act.by_number))
        assert sim.activity.add_comment(act, number, sim.account, "a new comment")
    for kind in ("issue", "pull", "comment"):
        sim.touch(kind, 3)


def resync(served, connection: str, published: Counter, provider: str = "github") -> None:
    """What a member's "sync now" sets off: an incremental sync (and the due-only
    reconciliation cycle every finished sync ends with)."""
    token = served.token("tenant-h", "u-1", "member")
    assert served.call("POST", f"/api/v1/connections/{connection}/sync",
                       token).status_code == 202
    pump(served, provider, published)


@pytest.mark.parametrize("transfer_heard", [True, False], ids=["transfer-heard",
                                                               "transfer-lost"])
def test_one_cycle_converges_to_the_providers_truth(served, github, monkeypatch,
                                                    transfer_heard) -> None:
    rng, published = random.Random(SEED), Counter()
    connection, _ = connect(served, "github")
    pump(served, "github", published)  # the first (full) sync; it registers the hooks
    assert all(github.hooks.list(r["full_name"].lower()) for r in visible(github))
    assert set(stored(served.ports, deleted=False)) == truth(github)
    first_sync = len(github.requests_log)

    github.drop_deliveries(fraction=DROP, seed=SEED)
    delete_share(github, rng)  # between syncs
    create_and_edit(github, rng)
    pump(served, "github", published)

    # during the next incremental sync: after its 5th request, more deletions and the transfer
    real_get, calls = ProviderClient.get, []
    moved = visible(github)[-1]["full_name"]
    moved_hook = str(github.hooks.list(moved.lower())[0].id)

    def get(self, *args: Any, **kw: Any):
        calls.append(args[0])
        if len(calls) == 5:
            delete_share(github, rng)
            if not transfer_heard:
                github.drop_deliveries(next_n=1)
            assert github.transfer(moved, "elsewhere")
        return real_get(self, *args, **kw)

    monkeypatch.setattr(ProviderClient, "get", get)
    resync(served, connection, published)
    monkeypatch.setattr(ProviderClient, "get", real_get)
    assert len(calls) > 5
    create_and_edit(github, rng)
    pump(served, "github", published)
    lost = [d for d in github.delivery_log.records() if not d.ok]
    assert lost, "the seeded drops lost some deliveries"
    heard = next(d for d in github.delivery_log.records() if d.ok)
    github.deliveries.redeliver(heard)  # a duplicate of an event keyway already applied
    pump(served, "github", published)

    # ONE reconciliation cycle: the recovery job's round, then an incremental sync (its count
    # signals, targeted sweeps and the due-only periodic cycle it ends with)
    github.clear_log()
    one_round(served, "github", published)
    resync(served, connection, published)

    live, tombs = stored(served.ports, deleted=False), stored(served.ports, deleted=True)
    want = truth(github)
    assert sorted(set(live) - want) == []  # no ghost
    assert sorted(want - set(live)) == []  # nothing lost
    # every tombstone has its reason: the simulator's deletions ``deleted``; the transferred
    # repository and everything under it ``transferred`` when its event reached keyway (on
    # time or recovered). A lost ``repository.transferred`` of a repository hook cannot be
    # recovered: the hook and its delivery log leave with the repository (its deliveries
    # endpoint answers 404), so the repositories list the sync walks whole is the signal, and
    # it can only say the repository left the connection's reach: ``access_lost``.
    # (a deletion inside the transferred repository whose webhook was lost too is told
    # either way: it is gone with the repository)
    moved_id = next(r["id"] for r in tombs.values() if r["kind"] == "repositories"
                    and r["full_name"] == moved)
    left = "transferred" if transfer_heard else "access_lost"
    expected = {k: {left} for k, t in tombs.items()
                if moved_id in (t["id"], t.get("repository"))}
    for d in github.deleted:
        key = (RECORD_KIND[d.kind], str(d.id))
        expected[key] = {"deleted", left} if d.container == moved else {"deleted"}
    reasons = {k: t["deleted_reason"] for k, t in tombs.items()}
    assert set(reasons) == set(expected)
    assert {k: r for k, r in reasons.items() if r not in expected[k]} == {}
    assert Counter(reasons.values())[left] > 100 and Counter(reasons.values())["deleted"] >= 10
    # every event applied once, none twice (delivery-id dedupe), except those the transferred
    # repository's hook lost: its log left with the repository (told by the repositories list)
    records = github.delivery_log.records()
    unreachable = {d.guid for d in records if d.hook == moved_hook} - {
        d.guid for d in records if d.hook == moved_hook and d.ok}
    assert {g: published[g] for g in {d.guid for d in records}
            if published[g] != (0 if g in unreachable else 1)} == {}
    assert any(d.event == "repository" and d.guid in unreachable
               for d in records) is not transfer_heard
    # no full re-sync: no repository's lists were swept whole, and the cycle sent fewer
    # requests than the first sync
    assert [s.id for s in served.ports.business.query(SWEEPS) if s.data.get("swept_at")] == []
    assert 0 < len(github.requests_log) < first_sync


# ---- Jira: dynamic webhooks and their failed-deliveries log ------------------------------------
@pytest.fixture
def jira(served, monkeypatch, leak_guard):
    sim = JiraSimulator(on_issue=leak_guard.track, rate_limit=1_000_000).start()
    sim.register_client("jira-client", "jira-client-secret-of-32-bytes-x", [
        _callback(served, "jira")])
    served.provider_config(monkeypatch, "jira", "jira-client", "jira-client-secret-of-32-bytes-x",
                           sim.oauth_url, sim.api_url)
    sim.seed_activity("acme", repos=3, issues=300, comments=900, seed=SEED)
    yield sim
    sim.stop()


def jira_truth(sim: JiraSimulator) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    for project in sim.data.projects.values():
        seen.add(("repositories", str(project.id)))
        for issue in project.issues.values():
            seen.add(("issues", str(issue["id"])))
            seen |= {("comments", str(c)) for c in issue["comments"]}
            seen |= {("labels", name) for name in issue["labels"]}  # labels in use
    return seen


def jira_delete_share(sim: JiraSimulator, rng: random.Random) -> None:
    issues = sorted(i["id"] for p in sim.data.projects.values() for i in p.issues.values())
    comments = sorted(sim.data.comments)
    for kind, pick in (("comment", comments), ("issue", issues)):
        for ident in rng.sample(pick, max(1, round(len(pick) * SHARE))):
            assert sim.delete(kind, ident)


def jira_create_and_edit(sim: JiraSimulator, rng: random.Random) -> None:
    """A new comment and a few edited issues and comments (the incremental sync reads them)."""
    issues = [i for p in sim.data.projects.values() for i in p.issues.values()]
    sim.data.add_comment(rng.choice(issues), sim.data.users[0], "a new comment", [])
    sim.touch("issue", 3)
    sim.touch("comment", 3)


def test_jira_one_cycle_converges_to_the_providers_truth(served, jira, monkeypatch) -> None:
    rng, published = random.Random(SEED), Counter()
    connection, _ = connect(served, "jira")
    pump(served, "jira", published)
    assert jira.webhooks.live(), "the first sync registered the dynamic webhook"
    assert set(stored(served.ports, deleted=False)) == jira_truth(jira)

    jira.webhooks.drop_fraction(DROP, SEED)
    jira_delete_share(jira, rng)  # between syncs
    jira_create_and_edit(jira, rng)
    pump(served, "jira", published)
    real_send, calls = ProviderClient._send, []

    def send(self, *args: Any, **kw: Any):
        calls.append(args[0])
        if len(calls) == 3:  # while the next sync runs
            jira_delete_share(jira, rng)
        return real_send(self, *args, **kw)

    monkeypatch.setattr(ProviderClient, "_send", send)
    resync(served, connection, published, "jira")
    monkeypatch.setattr(ProviderClient, "_send", real_send)
    assert len(calls) > 3
    jira_create_and_edit(jira, rng)
    pump(served, "jira", published)
    records = jira.webhooks.log.records()
    assert [d for d in records if not d.ok], "the seeded drops lost some deliveries"

    jira.clear_log()
    one_round(served, "jira", published)  # ONE cycle: the recovery round, an incremental sync
    resync(served, connection, published, "jira")

    live, tombs = stored(served.ports, deleted=False), stored(served.ports, deleted=True)
    want = jira_truth(jira)
    assert sorted(set(live) - want) == []  # no ghost
    assert sorted(want - set(live)) == []  # nothing lost
    gone = {("issues" if kind == "issue" else "comments", str(ident))
            for kind, ident in jira.data.deleted}
    # every tombstone is a deletion (an issue's comments go with it), reason ``deleted``
    assert {k: t["deleted_reason"] for k, t in tombs.items()} == dict.fromkeys(tombs, "deleted")
    assert gone <= set(tombs) and len(gone) >= 10
    assert {g: published[g] for g in {d.guid for d in records} if published[g] != 1} == {}
    assert [s.id for s in served.ports.business.query(SWEEPS) if s.data.get("swept_at")] == []
