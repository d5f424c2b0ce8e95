"""The simulators' metadata endpoints over real HTTP: the providers' response shapes, every
list walked exactly once, ``since`` / ``updated_after``, ``touch`` and ``delete``, ETags that
cost nothing, rate-limit and malformed-body faults, the forbidden families answering (and
logged with their template), and seeding at the issue's scale.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from keyway.simulators.activity import iso

TIMEOUT = 5
SMALL = {"repos": 2, "prs": 40, "issues": 60, "comments": 300, "review_comments": 50,
         "reviews": 30, "labels": 12}
SCALE = {"repos": 4, "prs": 2000, "issues": 3000, "comments": 20000}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def github(clock, leak_guard):
    with GitHubSimulator(clock=clock, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", **SMALL)
        yield sim


@pytest.fixture
def gitlab(clock, leak_guard):
    with GitLabSimulator(clock=clock, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", **SMALL)
        yield sim


def get(url: str, token: str, headers: dict | None = None, **params) -> requests.Response:
    return requests.get(url, params=params, timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {token}", **(headers or {})})


def walk(url: str, token: str, **params) -> list[dict]:
    """Every item of a list, following ``Link: rel="next"`` from the first page."""
    answer, items, pages = get(url, token, **params), [], 0
    while True:
        assert answer.status_code == 200, answer.text
        items += answer.json()
        nxt = re.search(r'<([^>]+)>; rel="next"', answer.headers.get("Link", ""))
        pages += 1
        assert pages < 500
        if nxt is None:
            return items
        answer = get(nxt.group(1), token)


def token_of(sim) -> str:
    return sim.mint_token().access_token


def gh_repos(sim) -> list[str]:
    return [f"{sim.api_url}/repos/acme/repo-{n:04d}" for n in range(1, SMALL["repos"] + 1)]


def gl_projects(sim) -> list[str]:
    return [f"{sim.api_url}/projects/{p['id']}" for p in sim.data.projects]


def ids(items: list[dict]) -> list[int]:
    return [item["id"] for item in items]


# ---- GitHub: shapes -------------------------------------------------------------------------
def test_github_repository_and_pull_requests_have_githubs_shape(github):
    token, repo = token_of(github), gh_repos(github)[0]
    full = get(repo, token).json()
    assert full["full_name"] == "acme/repo-0001" and full["owner"]["login"] == "acme"
    assert {"permissions", "open_issues_count", "default_branch", "visibility"} <= full.keys()
    pulls = walk(f"{repo}/pulls", token, state="all", per_page=100)
    pull = pulls[0]
    for field in ("id", "node_id", "number", "title", "state", "draft", "user", "labels",
                  "created_at", "updated_at", "closed_at", "merged_at", "html_url", "head",
                  "base", "author_association", "merge_commit_sha"):
        assert field in pull
    assert {"login", "id", "type"} <= pull["user"].keys()
    assert ISO_Z.fullmatch(pull["created_at"]) and pull["html_url"].endswith(
        f"/acme/repo-0001/pull/{pull['number']}")
    assert all(p["state"] == "closed" for p in pulls if p["merged_at"])
    assert {p["state"] for p in pulls} == {"open", "closed"}
    assert len(walk(f"{repo}/pulls", token, per_page=100)) == sum(
        p["state"] == "open" for p in pulls)  # GitHub's default: state=open


def test_github_issues_list_pull_requests_too_with_a_pull_request_key(github):
    token, repo = token_of(github), gh_repos(github)[0]
    issues = walk(f"{repo}/issues", token, state="all", per_page=100)
    pulls = [i for i in issues if "pull_request" in i]
    assert len(issues) == (SMALL["prs"] + SMALL["issues"]) // SMALL["repos"]
    assert len(pulls) == len(walk(f"{repo}/pulls", token, state="all", per_page=100))
    assert {"url", "html_url", "merged_at"} <= pulls[0]["pull_request"].keys()
    issue = next(i for i in issues if "pull_request" not in i)
    for field in ("id", "number", "title", "state", "user", "labels", "comments",
                  "created_at", "updated_at", "closed_at", "html_url", "body"):
        assert field in issue
    assert all(isinstance(label["name"], str) for i in issues for label in i["labels"])


def test_github_review_comments_carry_code_like_githubs(github):
    token = token_of(github)
    comment = get(f"{gh_repos(github)[0]}/pulls/comments", token).json()[0]
    assert comment["diff_hunk"].startswith("@@") and comment["path"] and comment["commit_id"]
    assert re.search(r"/pulls/\d+$", comment["pull_request_url"])
    assert {"pull_request_review_id", "line", "side", "user", "body"} <= comment.keys()


def test_github_reviews_labels_and_thread_comments_have_githubs_shape(github):
    token, repo = token_of(github), gh_repos(github)[0]
    pulls = walk(f"{repo}/pulls", token, state="all", per_page=100)
    reviews = [r for p in pulls for r in get(f"{repo}/pulls/{p['number']}/reviews",
                                              token).json()]
    assert reviews and {r["state"] for r in reviews} <= {"APPROVED", "CHANGES_REQUESTED",
                                                         "COMMENTED"}
    assert {"id", "user", "body", "submitted_at", "commit_id", "html_url"} <= reviews[0].keys()
    labels = walk(f"{repo}/labels", token, per_page=5)
    assert len(labels) == SMALL["labels"] and labels[0]["name"] == "bug"
    assert {"id", "node_id", "url", "name", "color", "default", "description"} <= labels[0].keys()
    comment = get(f"{repo}/issues/comments", token).json()[0]
    assert {"id", "issue_url", "html_url", "user", "body", "created_at",
            "updated_at", "author_association"} <= comment.keys()


def test_github_unknown_repositories_and_threads_are_404(github):
    token = token_of(github)
    assert get(f"{github.api_url}/repos/acme/nothing/pulls", token).status_code == 404
    assert get(f"{gh_repos(github)[0]}/pulls/9999/reviews", token).status_code == 404
    assert get(f"{gh_repos(github)[0]}/issues/9999/comments", token).status_code == 404


# ---- GitHub: pagination, since, touch, delete, write ----------------------------------------
@pytest.mark.parametrize(("path", "params", "total"), [
    ("pulls", {"state": "all", "sort": "updated", "direction": "desc"}, SMALL["prs"]),
    ("pulls", {"state": "all", "direction": "asc"}, SMALL["prs"]),
    ("issues", {"state": "all", "sort": "updated", "direction": "desc"},
     SMALL["prs"] + SMALL["issues"]),
    ("issues/comments", {}, SMALL["comments"]),
    ("issues/comments", {"sort": "updated", "direction": "desc"}, SMALL["comments"]),
    ("pulls/comments", {"sort": "updated", "direction": "asc"}, SMALL["review_comments"]),
    ("labels", {}, SMALL["labels"] * SMALL["repos"]),
])
def test_github_link_pagination_walks_every_item_exactly_once(github, path, params, total):
    token = token_of(github)
    seen = [i for repo in gh_repos(github) for i in walk(f"{repo}/{path}", token,
                                                         per_page=17, **params)]
    assert len(seen) == len(set(ids(seen))) == total
    if params.get("sort") == "updated":
        stamps = [i["updated_at"] for i in seen[:10]]
        assert stamps == sorted(stamps, reverse=params["direction"] == "desc")


def test_github_thread_comments_and_reviews_add_up_to_what_was_seeded(github):
    token, comments, reviews = token_of(github), 0, 0
    for repo in gh_repos(github):
        for thread in walk(f"{repo}/issues", token, state="all", per_page=100):
            listed = walk(f"{repo}/issues/{thread['number']}/comments", token, per_page=100)
            assert len(listed) == thread["comments"]
            comments += len(listed)
            if "pull_request" in thread:
                reviews += len(get(f"{repo}/pulls/{thread['number']}/reviews", token).json())
    assert (comments, reviews) == (SMALL["comments"], SMALL["reviews"])


@pytest.mark.parametrize("path", ["issues", "issues/comments", "pulls/comments"])
def test_github_since_returns_exactly_what_was_updated_at_or_after_it(github, path):
    token, repo = token_of(github), gh_repos(github)[0]
    every = walk(f"{repo}/{path}", token, state="all", per_page=100)
    since = sorted(i["updated_at"] for i in every)[len(every) // 2]
    recent = walk(f"{repo}/{path}", token, state="all", since=since, per_page=100)
    assert sorted(ids(recent)) == sorted(i["id"] for i in every if i["updated_at"] >= since)


def test_github_pulls_have_no_since_filter(github):
    token, repo = token_of(github), gh_repos(github)[0]
    late = iso(int(github.clock()))
    every = walk(f"{repo}/pulls", token, state="all", per_page=100)
    assert len(walk(f"{repo}/pulls", token, state="all", since=late, per_page=100)) == len(
        every) > 0


def test_github_touched_items_are_exactly_what_the_next_since_query_finds(github, clock):
    token = token_of(github)
    clock.now += 600
    since = iso(int(clock.now))
    pulls, issues = github.touch("pull", 3), github.touch("issue", 4)
    comments, remarks = github.touch("comment", 5), github.touch("review_comment", 2)
    found = {path: [i for repo in gh_repos(github) for i in walk(
        f"{repo}/{path}", token, state="all", since=since, per_page=100)]
        for path in ("issues", "issues/comments", "pulls/comments")}
    changed = found["issues"]
    assert sorted(i["id"] for i in changed if "pull_request" not in i) == sorted(issues)
    assert len([i for i in changed if "pull_request" in i]) == 3
    assert sorted(ids(found["issues/comments"])) == sorted(comments)
    assert sorted(ids(found["pulls/comments"])) == sorted(remarks)
    newest = [p for repo in gh_repos(github) for p in get(
        f"{repo}/pulls", token, state="all", sort="updated", direction="desc").json()[:3]]
    assert set(pulls) <= set(ids(newest))
    assert all("(edited" in i["title"] for i in changed)


def test_github_deleted_items_vanish_from_every_list_and_are_recorded(github):
    token, repo = token_of(github), gh_repos(github)[0]
    comment = get(f"{repo}/issues/comments", token).json()[0]
    assert github.delete("comment", comment["id"]) and not github.delete("comment",
                                                                         comment["id"])
    assert comment["id"] not in ids(walk(f"{repo}/issues/comments", token, per_page=100))
    issue = next(i for i in walk(f"{repo}/issues", token, state="all", per_page=100)
                 if "pull_request" not in i and i["comments"])
    github.delete("issue", issue["id"])
    assert issue["id"] not in ids(walk(f"{repo}/issues", token, state="all", per_page=100))
    assert get(f"{repo}/issues/{issue['number']}/comments", token).status_code == 404
    kinds = [(d.kind, d.container) for d in github.deleted]
    assert kinds[:2] == [("comment", "acme/repo-0001"), ("issue", "acme/repo-0001")]
    assert len([k for k, _ in kinds if k == "comment"]) == 1 + issue["comments"]
    with pytest.raises(ValueError):
        github.delete("commit", 1)


def test_github_a_posted_comment_is_the_token_users_and_bumps_its_thread(github, clock):
    token, repo = token_of(github), gh_repos(github)[0]
    clock.now += 60
    answer = requests.post(f"{repo}/issues/3/comments", json={"body": "Shipped."},
                           headers={"Authorization": f"token {token}"}, timeout=TIMEOUT)
    assert answer.status_code == 201
    body = answer.json()
    assert (body["user"]["login"], body["body"]) == ("octocat", "Shipped.")
    assert answer.headers["Location"] == body["url"]
    since = iso(int(clock.now))
    assert ids(walk(f"{repo}/issues/comments", token, since=since)) == [body["id"]]
    assert [i["number"] for i in walk(f"{repo}/issues", token, state="all", since=since)] == [3]
    refused = requests.post(f"{repo}/issues/3/comments", json={},
                            headers={"Authorization": f"token {token}"}, timeout=TIMEOUT)
    assert refused.status_code == 422


# ---- GitHub: ETags, faults, forbidden families ----------------------------------------------
def test_github_a_304_costs_no_quota_until_something_changes(github):
    token, url = token_of(github), f"{gh_repos(github)[0]}/issues"
    first = get(url, token, state="all", sort="updated", direction="desc", per_page=100)
    used = github.quota_used(github.account.id)
    cached = get(url, token, {"If-None-Match": first.headers["ETag"]}, state="all",
                 sort="updated", direction="desc", per_page=100)
    assert cached.status_code == 304 and cached.content == b""
    assert github.quota_used(github.account.id) == used
    assert cached.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]
    github.touch("issue", 1)
    github.touch("pull", 1)
    again = get(url, token, {"If-None-Match": first.headers["ETag"]}, state="all",
                sort="updated", direction="desc", per_page=100)
    assert again.status_code == 200 and github.quota_used(github.account.id) == used + 1


def test_github_secondary_rate_limit_has_githubs_shape_and_spends_nothing(github):
    token, url = token_of(github), f"{gh_repos(github)[0]}/pulls"
    github.rate_limit_next(status=403, retry_after=42, secondary=True)
    used = github.quota_used(github.account.id)
    limited = get(url, token)
    assert limited.status_code == 403 and limited.headers["Retry-After"] == "42"
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert "secondary-rate-limits" in limited.json()["documentation_url"]
    assert int(limited.headers["X-RateLimit-Remaining"]) > 0  # the primary budget is fine
    assert github.quota_used(github.account.id) == used
    assert get(url, token).status_code == 200


def test_github_primary_rate_limit_says_nothing_remains_until_the_reset(github, clock):
    github.rate_limit_next(status=429, retry_after=30, count=2)
    token = token_of(github)
    for _ in range(2):
        limited = get(f"{gh_repos(github)[0]}/issues", token)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "30"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert int(limited.headers["X-RateLimit-Reset"]) == int(clock.now) + 30
        assert limited.json()["message"].startswith("API rate limit exceeded")
    assert get(f"{gh_repos(github)[0]}/issues", token).status_code == 200


def test_malformed_next_answers_200_with_a_truncated_body_once(github):
    token, url = token_of(github), f"{gh_repos(github)[0]}/issues/comments"
    github.malformed_next()
    broken = get(url, token)
    assert broken.status_code == 200 and "ETag" not in broken.headers
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.text)
    assert len(get(url, token).json()) == 30


@pytest.mark.parametrize(("path", "status", "template"), [
    ("contents/src/app.py", 200, "/repos/{owner}/{repo}/contents/{path}"),
    ("git/trees/main", 200, "/repos/{owner}/{repo}/git/trees/{tree_sha}"),
    ("git/blobs/abc123", 200, "/repos/{owner}/{repo}/git/blobs/{file_sha}"),
    ("git/ref/heads/main", 200, "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("tarball/main", 302, "/repos/{owner}/{repo}/tarball/{ref}"),
    ("zipball/main", 302, "/repos/{owner}/{repo}/zipball/{ref}"),
    ("compare/main...feature-1", 200, "/repos/{owner}/{repo}/compare/{basehead}"),
    ("pulls/{pull}/files", 200, "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
])
def test_github_forbidden_families_answer_and_are_logged_with_their_template(
        github, path, status, template):
    token, repo = token_of(github), gh_repos(github)[0]
    pull = get(f"{repo}/pulls", token, state="all").json()[0]["number"]
    github.clear_log()
    answer = requests.get(f"{repo}/{path.format(pull=pull)}", allow_redirects=False,
                          timeout=TIMEOUT, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == status
    assert [(e.template, e.status) for e in github.requests_log] == [(template, status)]


def test_github_archive_redirects_lead_to_an_archive(github):
    token = token_of(github)
    answer = get(f"{gh_repos(github)[0]}/tarball/main", token)
    assert answer.status_code == 200 and answer.content[:2] == b"\x1f\x8b"
    assert [e.template for e in github.requests_log][-2:] == [
        "/repos/{owner}/{repo}/tarball/{ref}", "/_codeload/{archive}"]


def test_the_request_log_counts_requests_by_template(github):
    token, repo = token_of(github), gh_repos(github)[0]
    github.clear_log()
    walk(f"{repo}/issues", token, state="all", per_page=30)
    get(f"{repo}/labels", token)
    counts: dict[str, int] = {}
    for entry in github.requests_log:
        counts[entry.template] = counts.get(entry.template, 0) + 1
    assert counts == {"/repos/{owner}/{repo}/issues": 2, "/repos/{owner}/{repo}/labels": 1}


# ---- GitLab ---------------------------------------------------------------------------------
def test_gitlab_project_by_id_or_encoded_path_and_merge_request_shape(gitlab):
    token = token_of(gitlab)
    by_id = get(gl_projects(gitlab)[0], token).json()
    by_path = get(f"{gitlab.api_url}/projects/acme%2Fproject-0001", token).json()
    assert by_id["id"] == by_path["id"] and by_path["path_with_namespace"] == "acme/project-0001"
    assert {"_links", "open_issues_count", "web_url", "namespace"} <= by_id.keys()
    mrs = walk(f"{gitlab.api_url}/projects/acme%2Fproject-0001/merge_requests", token,
               per_page=7)
    mr = mrs[0]
    for field in ("id", "iid", "project_id", "title", "state", "draft", "author", "labels",
                  "created_at", "updated_at", "closed_at", "merged_at", "web_url",
                  "user_notes_count", "source_branch", "target_branch", "sha", "references"):
        assert field in mr
    assert {"id", "username", "name"} <= mr["author"].keys()
    assert ISO_MS.fullmatch(mr["created_at"]) and "/-/merge_requests/" in mr["web_url"]
    assert {m["state"] for m in mrs} <= {"opened", "closed", "merged"}
    assert all(m["merged_at"] for m in mrs if m["state"] == "merged")
    assert all(m["title"].startswith("Draft: ") for m in mrs if m["draft"])


def test_gitlab_notes_approvals_and_labels_have_gitlabs_shape(gitlab):
    token, project = token_of(gitlab), gl_projects(gitlab)[0]
    mrs = walk(f"{project}/merge_requests", token, per_page=100)
    notes = [n for m in mrs for n in walk(f"{project}/merge_requests/{m['iid']}/notes", token)]
    assert any(n["system"] for n in notes) and any(not n["system"] for n in notes)
    diff = next(n for n in notes if n["type"] == "DiffNote")
    assert {"new_path", "new_line", "head_sha"} <= diff["position"].keys()
    for field in ("id", "body", "author", "created_at", "updated_at", "system",
                  "noteable_id", "noteable_type", "noteable_iid", "resolvable"):
        assert field in notes[0]
    approvals = [get(f"{project}/merge_requests/{m['iid']}/approvals", token).json()
                 for m in mrs]
    approved = [a for a in approvals if a["approved"]]
    assert approved and {"user"} == approved[0]["approved_by"][0].keys()
    assert {"approvals_required", "approvals_left", "iid", "state"} <= approvals[0].keys()
    labels = walk(f"{project}/labels", token, per_page=5)
    assert len(labels) == SMALL["labels"]
    assert {"id", "name", "color", "description", "open_issues_count"} <= labels[0].keys()


def test_gitlab_unknown_projects_and_threads_are_404(gitlab):
    token = token_of(gitlab)
    assert get(f"{gitlab.api_url}/projects/acme%2Fnothing", token).json() == {
        "message": "404 Project Not Found"}
    assert get(f"{gl_projects(gitlab)[0]}/merge_requests/999/notes", token).status_code == 404
    assert get(f"{gl_projects(gitlab)[0]}/merge_requests/999/approvals",
               token).status_code == 404


@pytest.mark.parametrize(("path", "params", "total"), [
    ("merge_requests", {"order_by": "updated_at", "sort": "desc"}, SMALL["prs"]),
    ("merge_requests", {"state": "all", "sort": "asc"}, SMALL["prs"]),
    ("issues", {"order_by": "updated_at", "sort": "asc"}, SMALL["issues"]),
    ("issues", {"pagination": "keyset", "order_by": "updated_at", "sort": "desc"},
     SMALL["issues"]),
    ("issues", {"pagination": "keyset", "order_by": "id", "sort": "asc"}, SMALL["issues"]),
    ("labels", {}, SMALL["labels"] * SMALL["repos"]),
])
def test_gitlab_pagination_walks_every_item_exactly_once(gitlab, path, params, total):
    token = token_of(gitlab)
    seen = [i for project in gl_projects(gitlab)
            for i in walk(f"{project}/{path}", token, per_page=13, **params)]
    assert len(seen) == len(set(ids(seen))) == total


def test_gitlab_offset_headers_report_totals_and_keyset_pages_do_not(gitlab):
    token, project = token_of(gitlab), gl_projects(gitlab)[0]
    offset = get(f"{project}/issues", token, per_page=10)
    per_project = len(walk(f"{project}/issues", token, per_page=100))
    assert offset.headers["X-Total"] == str(per_project) and offset.headers["X-Next-Page"] == "2"
    keyset = get(f"{project}/issues", token, per_page=10, pagination="keyset", order_by="id")
    assert "X-Total" not in keyset.headers and "cursor=" in keyset.headers["Link"]


def test_gitlab_notes_of_every_thread_add_up_to_what_was_seeded(gitlab):
    token, user_notes, diff_notes = token_of(gitlab), 0, 0
    for project in gl_projects(gitlab):
        for kind in ("merge_requests", "issues"):
            for thread in walk(f"{project}/{kind}", token, per_page=100):
                notes = walk(f"{project}/{kind}/{thread['iid']}/notes", token, per_page=100,
                             sort="asc", order_by="updated_at")
                mine = [n for n in notes if not n["system"]]
                assert len(mine) == thread["user_notes_count"]
                user_notes += sum(n["type"] is None for n in mine)
                diff_notes += sum(n["type"] == "DiffNote" for n in mine)
    assert (user_notes, diff_notes) == (SMALL["comments"], SMALL["review_comments"])


def test_gitlab_updated_after_and_touch_find_exactly_what_changed(gitlab, clock):
    token, project = token_of(gitlab), gl_projects(gitlab)[0]
    every = walk(f"{project}/merge_requests", token, per_page=100)
    middle = sorted(m["updated_at"] for m in every)[len(every) // 2]
    recent = walk(f"{project}/merge_requests", token, per_page=100, updated_after=middle)
    assert sorted(ids(recent)) == sorted(m["id"] for m in every if m["updated_at"] >= middle)

    def changed_since(seconds: int) -> list[dict]:
        since = iso(int(clock.now), millis=True)
        clock.now += seconds
        return [i for p in gl_projects(gitlab) for path in ("merge_requests", "issues")
                for i in walk(f"{p}/{path}", token, per_page=100, updated_after=since)]

    clock.now += 30
    touched = gitlab.touch("pull", 6) + gitlab.touch("issue", 6)
    assert sorted(ids(changed_since(30))) == sorted(touched)
    noted = gitlab.touch("comment", 1)
    (thread,) = changed_since(30)  # an edited note touches its merge request or issue
    kind = "merge_requests" if "merge_status" in thread else "issues"
    notes = get(f"{gitlab.api_url}/projects/{thread['project_id']}/{kind}/{thread['iid']}"
                "/notes", token, order_by="updated_at").json()
    assert notes[0]["id"] == noted[0] and "(edited" in notes[0]["body"]


def test_gitlab_deleted_merge_requests_take_their_notes_with_them(gitlab):
    token, project = token_of(gitlab), gl_projects(gitlab)[0]
    mr = walk(f"{project}/merge_requests", token, per_page=100)[0]
    assert gitlab.delete("pull", mr["id"])
    assert mr["id"] not in ids(walk(f"{project}/merge_requests", token, per_page=100))
    assert get(f"{project}/merge_requests/{mr['iid']}/notes", token).status_code == 404
    assert gitlab.deleted[0].kind == "pull" and gitlab.deleted[0].id == mr["id"]
    assert len([d for d in gitlab.deleted if d.kind in ("comment", "review_comment")]) == (
        mr["user_notes_count"])


def test_gitlab_a_posted_note_is_the_token_users(gitlab, clock):
    token, project = token_of(gitlab), gl_projects(gitlab)[0]
    clock.now += 5
    answer = requests.post(f"{project}/merge_requests/1/notes", data={"body": "LGTM"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert answer.status_code == 201
    note = answer.json()
    assert (note["author"]["username"], note["system"], note["body"]) == ("jdoe", False, "LGTM")
    first = get(f"{project}/merge_requests", token, order_by="updated_at").json()[0]
    assert first["iid"] == 1 and first["updated_at"] == iso(int(clock.now), millis=True)


def test_gitlab_a_304_costs_no_quota(gitlab):
    token, url = token_of(gitlab), f"{gl_projects(gitlab)[0]}/merge_requests"
    first = get(url, token, order_by="updated_at")
    used = gitlab.quota_used(gitlab.account.id)
    cached = get(url, token, {"If-None-Match": first.headers["ETag"]}, order_by="updated_at")
    assert cached.status_code == 304 and gitlab.quota_used(gitlab.account.id) == used
    assert cached.headers["RateLimit-Remaining"] == first.headers["RateLimit-Remaining"]


def test_gitlab_rate_limit_is_a_429_with_retry_after(gitlab):
    token = token_of(gitlab)
    gitlab.rate_limit_next(retry_after=17)
    limited = get(f"{gl_projects(gitlab)[0]}/issues", token)
    assert (limited.status_code, limited.text) == (429, "Retry later\n")
    assert limited.headers["Retry-After"] == "17" and limited.headers["RateLimit-Remaining"] == "0"
    assert get(f"{gl_projects(gitlab)[0]}/issues", token).status_code == 200


def test_gitlab_malformed_next_truncates_a_real_answer(gitlab):
    token = token_of(gitlab)
    gitlab.malformed_next()
    broken = get(f"{gl_projects(gitlab)[0]}/labels", token)
    assert broken.status_code == 200 and broken.text.startswith('[{"id": ')
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.text)


@pytest.mark.parametrize(("path", "template"), [
    ("repository/files/src%2Fapp.py/raw", "/projects/{id}/repository/files/{file_path}/raw"),
    ("repository/files/src%2Fapp.py", "/projects/{id}/repository/files/{file_path}"),
    ("repository/archive", "/projects/{id}/repository/archive"),
    ("repository/archive.zip", "/projects/{id}/repository/archive.{format}"),
    ("repository/tree", "/projects/{id}/repository/tree"),
    ("repository/compare?from=main&to=feature-1", "/projects/{id}/repository/compare"),
    ("merge_requests/1/diffs", "/projects/{id}/merge_requests/{merge_request_iid}/diffs"),
])
def test_gitlab_forbidden_families_answer_and_are_logged_with_their_template(
        gitlab, path, template):
    token = token_of(gitlab)
    gitlab.clear_log()
    answer = requests.get(f"{gitlab.api_url}/projects/acme%2Fproject-0001/{path}",
                          headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.content
    assert [(e.template, e.status) for e in gitlab.requests_log] == [(template, 200)]


def test_gitlab_stops_counting_above_ten_thousand_items(leak_guard):
    with GitLabSimulator(rate_limit=10**6, on_issue=leak_guard.track) as sim:
        sim.seed_activity("big", repos=1, prs=0, issues=10_001, comments=0, labels=0)
        answer = get(f"{sim.api_url}/projects/big%2Fproject-0001/issues", token_of(sim),
                     per_page=100, page=101)
        assert len(answer.json()) == 1 and answer.headers["X-Next-Page"] == ""
        assert "X-Total" not in answer.headers and 'rel="last"' not in answer.headers["Link"]


# ---- scale and determinism ------------------------------------------------------------------
@pytest.mark.parametrize("simulator", [GitHubSimulator, GitLabSimulator])
def test_seeding_the_issues_scale_serves_deep_pages(simulator, leak_guard):
    with simulator(rate_limit=10**6, on_issue=leak_guard.track) as sim:
        repos = sim.seed_activity("acme", **SCALE)
        token = token_of(sim)
        if simulator is GitHubSimulator:
            url = f"{sim.api_url}/repos/{repos[-1]['full_name']}/issues/comments"
            params = {"sort": "updated", "direction": "desc", "page": 40}
        else:
            url = f"{sim.api_url}/projects/{repos[-1]['id']}/issues"
            params = {"order_by": "updated_at", "sort": "asc", "page": 7}
        answer = get(url, token, per_page=100, **params)
        assert answer.status_code == 200 and len(answer.json()) == 100


def test_seeding_is_deterministic_for_a_seed_and_a_clock(clock):
    def first_page(seed: int) -> list[tuple]:
        with GitHubSimulator(clock=clock) as sim:
            sim.seed_activity("acme", repos=1, prs=5, issues=5, comments=20, seed=seed)
            page = get(f"{sim.api_url}/repos/acme/repo-0001/issues", token_of(sim),
                       state="all").json()
            return [(i["id"], i["title"], i["user"]["login"], i["state"], i["updated_at"],
                     i["comments"]) for i in page]
    assert first_page(1) == first_page(1) != first_page(2)
