"""Jira Cloud: normalizers over the recorded REST v3 and webhook payloads, ADF ⇄ text, the
plan's JQL (minute resolution, time zones) and the body-cursor pagination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import InvalidInput
from shared.fetch import client as client_module
from shared.fetch.jira.plan import PLAN, issues_query, jql_time
from shared.records import adf, jira
from shared.records.model import FIELDS, Context, record_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jira"
SITE, OTHER_SITE = "1324a887-45db-1bf4-1e99-ef0ff456d421", "2f6d0c42-0000-4000-8000-00000000b0b0"
SEEN = "2024-05-03T00:00:00.000000Z"


def load(name: str):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def ctx(site: str = SITE, project: str = "10000") -> Context:
    return Context("acme", "jira", "conn-1", record_id("acme", "jira", "repositories",
                                                       f"{site}:{project}"), SEEN, site)


# ---- projects, issues, labels, comments, users ------------------------------------------
def test_a_project_is_a_repository_keyed_by_site_and_project_id():
    project = load("project_search")["values"][0]
    record = jira.repository(project, Context("acme", "jira", "conn-1", observed_at=SEEN,
                                              site=SITE))
    assert (record["external_id"], record["name"], record["full_name"]) == ("10000", "EX",
                                                                           "Example")
    assert record["id"] == record_id("acme", "jira", "repositories", f"{SITE}:10000")
    assert record["updated_at"] == SEEN and record["default_branch"] is None
    other = jira.repository(project, Context("acme", "jira", "conn-2", observed_at=SEEN,
                                             site=OTHER_SITE))
    assert other["id"] != record["id"]  # project 10000 exists on every site


def test_a_project_without_a_site_is_refused():
    with pytest.raises(InvalidInput, match="site is required"):
        jira.repository(load("project_search")["values"][0],
                        Context("acme", "jira", "conn-1", observed_at=SEEN))


def test_an_issue_from_search_jql_normalizes_with_its_state_number_and_people():
    done, todo = load("search_jql")["issues"]
    record = jira.issue(done, ctx())
    assert (record["number"], record["title"], record["state"]) == (1, "Fix the export timeout",
                                                                   "closed")
    assert record["id"] == record_id("acme", "jira", "issues", f"{SITE}:10000#1")
    assert record["external_id"] == "10002"
    assert record["updated_at"] == "2024-04-09T16:20:00.000000Z"
    assert record["closed_at"] == "2024-04-09T16:20:00.000000Z"
    assert record["author"] == {"login": "Mia Krystof",
                                "external_id": "5b10a2844c20165700ede21g"}
    assert record["labels"] == ["export", "timeout"] and len(record["assignees"]) == 1
    assert record["url"] == "https://your-domain.atlassian.net/browse/EX-1"
    open_one = jira.issue(todo, ctx())
    assert (open_one["state"], open_one["closed_at"], open_one["assignees"]) == ("open", None,
                                                                                 [])
    assert set(record) == set(FIELDS["issues"])  # no provider field leaks into the record


def test_an_issue_of_another_project_is_refused():
    with pytest.raises(InvalidInput, match="another project"):
        jira.issue(load("search_jql")["issues"][0], ctx(project="10001"))


def test_labels_are_the_names_an_issue_carries_in_its_project():
    issue = load("search_jql")["issues"][0]
    labels = jira.labels(issue, ctx())
    assert [(label["name"], label["updated_at"]) for label in labels] == [
        ("export", "2024-04-09T16:20:00.000000Z"), ("timeout", "2024-04-09T16:20:00.000000Z")]
    assert labels[0]["id"] == record_id("acme", "jira", "labels", f"{SITE}:10000#export")
    assert [r["kind"] for r in jira.issue_with_labels(issue, ctx())] == [
        "issues", "labels", "labels"]


def test_a_rest_v3_comment_body_is_adf_and_becomes_plain_text():
    raw = load("comments")["comments"][0]
    record = jira.comment(raw, ctx(), "issue", 7, "EX-7")
    assert record["body"].startswith("Lorem ipsum dolor sit amet") and "\n" not in record["body"]
    assert record["parent"] == record_id("acme", "jira", "issues", f"{SITE}:10000#7")
    assert record["id"] == record_id("acme", "jira", "comments", f"{SITE}:10000")
    assert record["url"] == ("https://your-domain.atlassian.net/browse/EX-7"
                             "?focusedCommentId=10000")
    assert record["review_comment"] is False and record["path"] is None


def test_a_webhook_comment_body_is_a_plain_string():
    event = load("webhooks/comment_created")
    record = jira.comment(event["comment"], ctx(), "issue", 24, "ED-24")
    assert record["body"] == "I can reproduce this on a 3G connection."
    assert record["updated_at"] == "2024-05-01T01:15:00.000000Z"  # +1000 converted


def test_jira_comments_belong_to_issues_only():
    with pytest.raises(InvalidInput, match="belong to issues"):
        jira.comment(load("comments")["comments"][0], ctx(), "pull_request", 1)


def test_the_user_of_myself_has_its_account_id_and_display_name():
    record = jira.user(load("myself"), ctx())
    assert (record["external_id"], record["login"]) == ("5b10a2844c20165700ede21g",
                                                        "Mia Krystof")
    assert record["avatar_url"].endswith("/48") and record["updated_at"] == SEEN


@pytest.mark.parametrize("key, number", [("ED-1", 1), ("A1B-420", 420)])
def test_an_issue_number_is_the_numeric_part_of_its_key(key, number):
    assert jira.number_of(key) == number


@pytest.mark.parametrize("key", ["ED", "ED-", "-3", "ED-x1", 12])
def test_a_malformed_issue_key_is_refused(key):
    with pytest.raises(InvalidInput):
        jira.number_of(key)


# ---- Atlassian Document Format ----------------------------------------------------------
def test_adf_lists_mentions_breaks_and_tables_become_readable_text():
    doc = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [
            {"type": "mention", "attrs": {"id": "1", "text": "@Jane"}},
            {"type": "text", "text": " see below", "marks": [{"type": "strong"}]},
            {"type": "hardBreak"}, {"type": "emoji", "attrs": {"shortName": ":tada:"}}]},
        {"type": "bulletList", "content": [
            {"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "one"}]}]},
            {"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "inlineCard", "attrs": {"url": "https://example.com/x"}}]}]}]},
        {"type": "table", "content": [{"type": "tableRow", "content": [
            {"type": "tableHeader", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "a"}]}]},
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "b"}]}]}]}]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "m"}}]}]}
    assert adf.to_text(doc) == "@Jane see below\n:tada:\n- one\n- https://example.com/x\na | b"


def test_adf_nesting_beyond_the_bound_is_dropped_not_recursed_into():
    node: dict = {"type": "text", "text": "deep"}
    for _ in range(adf.MAX_DEPTH + 10):
        node = {"type": "blockquote", "content": [node]}
    assert adf.to_text({"type": "doc", "content": [node]}) == ""


def test_text_posted_as_adf_reads_back_the_same():
    text = "First line\nsecond line\n\nA new paragraph"
    doc = adf.from_text(text)
    assert doc["type"] == "doc" and len(doc["content"]) == 2
    assert {"type": "hardBreak"} in doc["content"][0]["content"]
    assert adf.to_text(doc) == "First line\nsecond line\nA new paragraph"


# ---- the plan ---------------------------------------------------------------------------
def test_the_jql_bound_is_cut_to_the_minute_in_the_users_time_zone():
    assert jql_time("2024-05-01T10:07:59.999000Z", "Australia/Sydney") == "2024/05/01 20:07"
    assert jql_time("2024-05-01T10:07:00.000000Z", "America/Los_Angeles") == "2024/05/01 03:07"
    assert jql_time("2024-05-01T10:07:30.000000Z", "UTC") == "2024/05/01 10:07"


def test_without_a_known_time_zone_the_bound_moves_twelve_hours_earlier():
    assert jql_time("2024-05-01T10:07:00.000000Z", None) == "2024/04/30 22:07"
    assert jql_time("2024-05-01T10:07:00.000000Z", "Not/AZone") == "2024/04/30 22:07"


def test_the_issue_query_asks_only_for_what_changed_since_the_bound():
    first = issues_query({"project": "10000"}, None)
    assert first == {"jql": "project = 10000 ORDER BY updated DESC"}
    later = issues_query({"project": "10000", "time_zone": "UTC"}, "2024-05-01T10:02:45Z")
    assert later["jql"] == 'project = 10000 AND updated >= "2024/05/01 10:02" ORDER BY updated DESC'


def test_a_project_id_that_is_not_numeric_never_reaches_the_jql():
    with pytest.raises(ValueError):
        issues_query({"project": "10000 OR project is not EMPTY"}, None)


def test_the_plan_reads_the_site_and_the_time_zone_from_the_connection():
    connection = {"site": {"id": SITE, "url": "https://your-domain.atlassian.net"},
                  "account": {"id": "a", "login": "Mia", "time_zone": "Europe/Paris"}}
    assert PLAN.site_of(connection) == SITE
    assert PLAN.connection_params(connection) == {"time_zone": "Europe/Paris"}
    assert PLAN.site_of({}) is None and PLAN.connection_params({}) == {}
    parent = PLAN.parent_of("comments", load("search_jql")["issues"][0], {})
    assert (parent.kind, parent.number, dict(parent.path_params)) == (
        "issue", 1, {"issueIdOrKey": "EX-1"})


# ---- pagination in the body -------------------------------------------------------------
BASE = "https://api.atlassian.com/ex/jira/x/rest/api/3/search/jql?jql=project+%3D+1"


def test_a_next_page_token_is_followed_until_is_last():
    follow = client_module._body_cursor({"issues": [{}], "nextPageToken": "abc", "isLast": False},
                                        BASE + "&nextPageToken=old")
    assert follow is not None and follow.endswith("nextPageToken=abc")
    assert follow.count("nextPageToken") == 1
    assert client_module._body_cursor({"issues": [{}], "nextPageToken": "abc", "isLast": True},
                                      BASE) is None


def test_start_at_pages_advance_by_what_came_until_the_total():
    page = {"startAt": 0, "maxResults": 100, "total": 3, "comments": [{}, {}]}
    assert client_module._body_cursor(page, BASE).endswith("startAt=2")
    assert client_module._body_cursor({**page, "total": 2}, BASE) is None
    assert client_module._body_cursor({**page, "comments": []}, BASE) is None
    assert client_module._body_cursor(load("comments"), BASE) is None


def test_an_issues_comments_are_taken_from_its_comment_field_only_when_it_holds_them_all():
    embedded = PLAN.children["comments"].embedded
    two = [{"id": "1"}, {"id": "2"}]
    issue = {"key": "ABC-1", "fields": {"comment": {"comments": two, "total": 2, "startAt": 0,
                                                    "maxResults": 20}}}
    assert embedded(issue) == {"comments": two}
    assert embedded({"key": "ABC-1", "fields": {"comment": {
        "comments": [], "total": 0, "startAt": 0}}}) == {"comments": []}
    for page in ({"comments": two, "total": 25, "startAt": 0},  # more than it carries: read
                 {"comments": two, "total": 2, "startAt": 20},  # not the first page
                 {"comments": two, "total": True, "startAt": 0},  # not a count
                 {"comments": two},  # no total
                 {"comments": "x", "total": 1}, None):
        assert embedded({"key": "ABC-1", "fields": {"comment": page}}) is None
    assert embedded({"key": "ABC-1"}) is None  # the field not asked for: read
    assert "comment" in PLAN.resources[0].params["fields"].split(",")
