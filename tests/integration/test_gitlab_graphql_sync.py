"""GitLab's notes and approvals through GraphQL: one query per page of changed merge requests
or issues (plus one per further 100 notes of a parent), written as exactly the records the
per-item REST reads write; a GitLab whose GraphQL refuses the documents is read over REST,
remembered on the connection, logged once and shown in the status and health."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from keyway.simulators import GitLabSimulator
from keyway.simulators.oauth_model import Account
from shared import health
from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.fetch import groups
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.gitlab.plan import PLAN, REST_PLAN
from tests.integration.test_fetch_partial import CONNECTION, sync_status, synced
from tests.integration.test_fetch_sync import counted

# labels carry the time they were observed (GitLab gives none): compared by id only
KINDS = ("comments", "reviews", "pull_requests", "issues", "repositories")
CHILD_TEMPLATES = ("/notes", "/approvals")


@pytest.fixture
def sim(leak_guard):
    with GitLabSimulator(rate_limit=1_000_000, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=2, prs=230, issues=180, comments=1500,
                          review_comments=300, reviews=250)
        act = next(iter(sim.activity.projects.values()))
        for i in range(230):  # two follow-up pages of notes
            sim.activity.add_note(act, "MergeRequest", 3, Account("jdoe", 4242, "J"), f"{i}")
        for i in range(120):  # one
            sim.activity.add_note(act, "Issue", 2, Account("jdoe", 4242, "J"), f"{i}")
        yield sim


@pytest.fixture
def token(sim, leak_guard):
    return leak_guard.track(sim.mint_token(scopes=("read_api",)).access_token)


def fresh(tmp_path, name: str):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / name)}))
    ports.business.put("connections", CONNECTION, {"tenant": "t-1", "provider": "gitlab",
                                                   "status": "active"})
    return ports


def records(ports, kind: str) -> dict:
    """The records of ``kind``, less ``fresh_as_of`` (when each run found them complete)."""
    return {s.id: {k: v for k, v in s.data.items() if k != "fresh_as_of"}
            for s in ports.business.query(kind)}


def pages_and_follow_ups(sim) -> tuple[int, int]:
    """List pages of merge requests and issues (100 a page), and the notes pages beyond the
    first of every parent (system notes included: GraphQL lists them too)."""
    pages = follow_ups = 0
    for act in sim.activity.projects.values():
        for kind in ("MergeRequest", "Issue"):
            pages += math.ceil(sum(1 for k, _ in act.by_iid if k == kind) / 100)
        follow_ups += sum(max(math.ceil(len(ids) / 100) - 1, 0)
                          for ids in act.threads.values())
    return pages, follow_ups


def test_graphql_and_rest_write_the_same_records_field_by_field(tmp_path, sim, token):
    by_graphql, by_rest = fresh(tmp_path, "graphql"), fresh(tmp_path, "rest")
    assert synced(by_graphql, sim, PLAN, token).finished
    assert synced(by_rest, sim, REST_PLAN, token).finished
    for kind in KINDS:
        assert records(by_graphql, kind) == records(by_rest, kind), kind
    assert records(by_graphql, "labels").keys() == records(by_rest, "labels").keys()
    comments = records(by_graphql, "comments").values()
    assert sum(c["review_comment"] for c in comments) == 300  # diff notes, with positions
    assert all(c["path"] and c["commit_sha"] for c in comments if c["review_comment"])
    assert len(records(by_graphql, "reviews")) == 250 and len(comments) == 1500 + 300 + 350


def test_a_full_sync_costs_its_list_pages_and_one_query_per_page(tmp_path, sim, token):
    ports = fresh(tmp_path, "count")
    result, log, queries = counted(sim, lambda: synced(ports, sim, PLAN, token))
    pages, follow_ups = pages_and_follow_ups(sim)
    assert (pages, follow_ups) == (6, 3)  # 115 + 115 merge requests, 90 + 90 issues
    lists = [r for r in log if not r.path.endswith("/graphql")]
    assert not any(r.path.endswith(CHILD_TEMPLATES) for r in lists)  # no per-item read
    assert len(queries) == result.stats.graphql == pages + follow_ups
    assert [q["operation"] for q in queries].count("MergeRequestNotesPage") == 2
    assert result.stats.requests == len(log) == len(lists) + pages + follow_ups
    # 1 projects page; per project 2 merge request pages, 1 of issues, 1 of labels
    assert len(lists) == 1 + 2 * 4


def test_a_resync_asks_only_for_the_changed_parents(tmp_path, sim, token):
    ports = fresh(tmp_path, "resync")
    assert synced(ports, sim, PLAN, token).finished
    touched = set(sim.touch("pull", 3))
    result, log, queries = counted(sim, lambda: synced(ports, sim, PLAN, token))
    asked = [iid for q in queries for iid in q["variables"].get("iids", [])]
    changed = {str(t["iid"]) for a in sim.activity.projects.values()
               for (kind, _), t in a.by_iid.items() if kind == "MergeRequest"
               and t["id"] in touched}
    assert sorted(asked) == sorted(changed) and len(queries) <= 2  # one per project at most
    unchanged, _, none = counted(sim, lambda: synced(ports, sim, PLAN, token))
    assert none == [] and unchanged.stats.requests == unchanged.stats.not_modified


@pytest.mark.parametrize("refuse", ["lacking_field", "no_endpoint"])
def test_a_gitlab_refusing_the_documents_is_read_over_rest_and_says_so(
        tmp_path, sim, token, caplog, refuse):
    if refuse == "lacking_field":
        sim.graphql.lacking.add("MergeRequest.approvedBy")  # an older self-managed GitLab
    else:
        sim.graphql.enabled = False  # no /api/graphql at all
    ports, rest = fresh(tmp_path, "fallback"), fresh(tmp_path, "rest")
    first, log, queries = counted(sim, lambda: synced(ports, sim, PLAN, token))
    assert first.finished and len(queries) <= 1  # the refused query, once
    assert synced(rest, sim, REST_PLAN, token).finished
    for kind in KINDS:
        assert records(ports, kind) == records(rest, kind), kind

    reason = "refused" if refuse == "lacking_field" else "not_found"
    remembered = ports.business.get("connections", CONNECTION)[groups.FALLBACK_FIELD]
    assert remembered["reason"] == reason
    (missing,) = sync_status(ports)["missing"]
    assert (missing["child"], missing["reason"]) == ("graphql", f"graphql.unavailable: {reason}")
    assert health.derive(ports.business.get("connections", CONNECTION), sync_status(ports),
                         ports.clock.now()) == health.Health(
        "degraded", f"graphql.unavailable: {reason}")

    sim.touch("pull", 2)
    again, log, queries = counted(sim, lambda: synced(ports, sim, PLAN, token))
    assert again.finished and queries == []  # remembered: straight to REST
    assert any(r.path.endswith("/approvals") for r in log)
    logged = [r for r in caplog.records if r.getMessage() == "fetch.graphql_unavailable"]
    assert len(logged) == 1  # once, not per page or per sync


def test_graphql_is_tried_again_a_day_later_and_the_mark_clears(tmp_path, sim, token):
    ports = fresh(tmp_path, "reprobe")
    sim.graphql.enabled = False
    assert synced(ports, sim, PLAN, token).finished
    sim.graphql.enabled = True
    doc = ports.business.get("connections", CONNECTION)
    doc[groups.FALLBACK_FIELD]["checked_at"] = isoformat(  # a day has passed
        ports.clock.now() - groups.REPROBE - timedelta(seconds=1))
    ports.business.put("connections", CONNECTION, doc)
    sim.touch("pull", 2)
    _, _, queries = counted(sim, lambda: synced(ports, sim, PLAN, token))
    assert queries and groups.FALLBACK_FIELD not in ports.business.get("connections",
                                                                       CONNECTION)
    assert sync_status(ports)["missing"] == [] and sync_status(ports)["degraded"] is False


def test_a_project_graphql_does_not_show_leaves_its_parents_pending_not_lost(tmp_path, sim,
                                                                            token):
    ports = fresh(tmp_path, "hidden")
    assert synced(ports, sim, PLAN, token).finished
    (repo,) = [s for s in ports.business.query("repositories")
               if s.data["full_name"].endswith("project-0001")]
    ports.business.put("repositories", repo.id, {**repo.data, "full_name": "acme/moved-away"})
    touched = sim.touch("pull", 40)
    result = synced(ports, sim, PLAN, token)  # GraphQL answers project: null for that path
    assert result.finished and result.stats.missing > 0
    reasons = {m["reason"] for m in sync_status(ports)["missing"]}
    assert reasons == {"mr_notes.unavailable: not_found", "approvals.unavailable: not_found"}
    assert len(touched) == 40 and groups.FALLBACK_FIELD not in ports.business.get(
        "connections", CONNECTION)  # the endpoint works: no fallback for the connection


def test_graphql_queries_spend_the_same_budget_as_the_rest_requests(tmp_path, sim, token):
    for attempt in range(2):  # the simulator's window is a wall-clock minute: not across one
        ports = fresh(tmp_path, f"budget-{attempt}")
        window, used_before = sim.rate_limit.peek(sim.account.id).reset, sim.quota_used(
            sim.account.id)
        result, log, queries = counted(sim, lambda p=ports: synced(p, sim, PLAN, token))
        if sim.rate_limit.peek(sim.account.id).reset == window:
            break
    spent = sim.quota_used(sim.account.id) - used_before
    rest_points = sum(1 for r in log if not r.path.endswith("/graphql") and r.status < 300)
    assert queries and spent == rest_points + len(queries)  # GitLab charges both to one limit
    (only,) = ports.business.query("rate_budgets")  # one budget: no separate GraphQL one
    assert only.id == budget_key("gitlab", CONNECTION)
    budget = TokenBudget(ports.business, ports.clock, only.id).snapshot()
    assert budget["remaining"] == 1_000_000 - sim.quota_used(sim.account.id)


@pytest.fixture
def long_threads(leak_guard):
    """Merge requests of 250, 101 and 100 notes, issues of 200 and 101 (system notes count:
    GraphQL lists them too)."""
    with GitLabSimulator(rate_limit=1_000_000, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=6, issues=4, comments=30)
        act = next(iter(sim.activity.projects.values()))
        wanted = {("MergeRequest", 250), ("MergeRequest", 101), ("MergeRequest", 100),
                  ("Issue", 200), ("Issue", 101)}
        totals = {}
        for kind, total in sorted(wanted):
            iid = min(i for k, i in act.by_iid if k == kind and (k, i) not in totals)
            while len(sim.activity.notes(act, kind, iid, "created_at", False)) < total:
                sim.activity.add_note(act, kind, iid, Account("jdoe", 4242, "J"), "more")
            totals[(kind, iid)] = total
        yield sim, act, totals


def test_a_parent_past_100_notes_gets_one_query_per_further_100_and_every_note_is_stored(
        tmp_path, long_threads, leak_guard):
    sim, act, totals = long_threads
    token = leak_guard.track(sim.mint_token(scopes=("read_api",)).access_token)
    ports = fresh(tmp_path, "long")
    result, _, queries = counted(sim, lambda: synced(ports, sim, PLAN, token))
    assert result.finished
    operation = {"MergeRequest": "MergeRequestNotesPage", "Issue": "IssueNotesPage"}
    for (kind, iid), total in totals.items():
        follow_ups = [q["variables"] for q in queries if q["operation"] == operation[kind]
                      and q["variables"]["iid"] == str(iid)]
        assert len(follow_ups) == math.ceil(total / 100) - 1, (kind, iid, total)
        assert len({v["after"] for v in follow_ups}) == len(follow_ups)  # each a further page
    # one query per kind's page of parents, then 2 + 1 + 0 (merge requests) + 1 + 1 (issues)
    assert len(queries) == 2 + 5
    notes = [n for kind, iid in act.by_iid
             for n in sim.activity.notes(act, kind, iid, "created_at", False)]
    stored = {c["external_id"] for c in records(ports, "comments").values()}
    assert stored == {str(n["id"]) for n in notes if not n["system"]}  # each, past 100 too
