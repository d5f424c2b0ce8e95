"""The Bitbucket Cloud simulator behaves like bitbucket.org where keyway depends on it: HTTP
Basic consumer authentication, the consumer's own scopes, refresh tokens that do not rotate,
2-hour access tokens, pages of values with absolute next links, BBQL updated_on filters, the
default open-only pull request list, repositories without a tracker, the removed
cross-workspace lists and a rolling hourly limit."""

from __future__ import annotations

import pytest
import requests

from keyway.simulators import BitbucketSimulator

CALLBACK = "http://127.0.0.1:8080/oauth-bitbucket/callback"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock, leak_guard):
    with BitbucketSimulator(clock=clock, on_issue=leak_guard.track) as sim:
        sim.register_client("key-1", "secret-1", [CALLBACK], scopes=("account", "pullrequest"))
        sim.seed_activity("acme", repos=2, prs=70, issues=30, comments=120, reviews=20)
        yield sim


def code_for(sim, **params) -> str:
    answer = requests.get(f"{sim.oauth_url}/site/oauth2/authorize", allow_redirects=False,
                          timeout=10, params={"client_id": "key-1", "response_type": "code",
                                              "state": "s-1", **params})
    assert answer.status_code == 302 and answer.headers["Location"].startswith(CALLBACK)
    return answer.headers["Location"].split("code=")[1].split("&")[0]


def token_request(sim, auth=("key-1", "secret-1"), **form):
    return requests.post(f"{sim.oauth_url}/site/oauth2/access_token", data=form, auth=auth,
                         timeout=10)


def get(sim, path: str, token: str, **params):
    return requests.get(sim.api_url + path, params=params, timeout=10,
                        headers={"Authorization": f"Bearer {token}"})


def test_consumers_authenticate_with_basic_only_and_get_their_ticked_scopes(sim):
    code = code_for(sim, scope="repository:admin webhook")  # asking changes nothing
    in_form = requests.post(f"{sim.oauth_url}/site/oauth2/access_token", timeout=10, data={
        "grant_type": "authorization_code", "code": code, "client_id": "key-1",
        "client_secret": "secret-1"})
    assert in_form.status_code == 401 and in_form.json()["error"] == "invalid_client"
    assert token_request(sim, ("key-1", "wrong"), grant_type="authorization_code",
                         code=code).status_code == 401
    granted = token_request(sim, grant_type="authorization_code", code=code_for(sim)).json()
    assert granted["scopes"] == "account pullrequest" and granted["expires_in"] == 7200
    assert granted["token_type"] == "bearer"


def test_a_refresh_keeps_the_refresh_token_and_old_access_tokens_expire_on_their_own(
        sim, clock):
    first = token_request(sim, grant_type="authorization_code", code=code_for(sim)).json()
    second = token_request(sim, grant_type="refresh_token",
                           refresh_token=first["refresh_token"]).json()
    assert second["refresh_token"] == first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    third = token_request(sim, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert third.status_code == 200  # not single-use
    assert get(sim, "/user", first["access_token"]).status_code == 200
    clock.now += 7200
    expired = get(sim, "/user", first["access_token"])
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert get(sim, "/user", third.json()["access_token"]).status_code == 401  # 2 h for all


def test_pages_carry_values_and_an_absolute_next_until_the_last(sim):
    token = sim.mint_token().access_token
    seen, url = [], None
    page = get(sim, "/repositories/acme/repo-0001/pullrequests", token, pagelen=100,
               state=["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]).json()
    assert page["pagelen"] == 50  # pull requests: 50 at most
    while True:
        seen += [p["id"] for p in page["values"]]
        url = page.get("next")
        if not url:
            break
        assert url.startswith(sim.api_url + "/repositories/acme/repo-0001/pullrequests?")
        page = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert sorted(seen) == list(range(1, 36)) and page["size"] == 35
    assert "ETag" not in get(sim, "/repositories/acme", token).headers


def test_only_open_pull_requests_unless_asked_and_bbql_narrows_by_update(sim):
    token = sim.mint_token().access_token
    path = "/repositories/acme/repo-0001/pullrequests"
    every = get(sim, path, token, pagelen=50, sort="-updated_on",
                state=["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]).json()["values"]
    default = get(sim, path, token, pagelen=50).json()["values"]
    assert {p["state"] for p in default} == {"OPEN"} and len(default) < len(every)
    pivot = every[4]["updated_on"]
    newer = get(sim, path, token, q=f"updated_on > {pivot}", pagelen=50,
                state=["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]).json()
    assert sorted(p["id"] for p in newer["values"]) == sorted(
        p["id"] for p in every if p["updated_on"] > pivot)
    quoted = get(sim, path, token, q=f'updated_on >= "{pivot}"',
                 state=["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]).json()
    assert quoted["size"] == newer["size"] + 1
    assert get(sim, path, token, q="title ~ \"x\"").status_code == 400


def test_participants_only_on_the_single_pull_request_and_comments_bump_it(sim, clock):
    token = sim.mint_token().access_token
    listed = get(sim, "/repositories/acme/repo-0001/pullrequests", token).json()["values"][0]
    assert "participants" not in listed
    single = get(sim, f"/repositories/acme/repo-0001/pullrequests/{listed['id']}", token).json()
    assert isinstance(single["participants"], list)
    clock.now += 60
    posted = requests.post(
        f"{sim.api_url}/repositories/acme/repo-0001/pullrequests/{listed['id']}/comments",
        json={"content": {"raw": "LGTM"}}, headers={"Authorization": f"Bearer {token}"},
        timeout=10)
    assert posted.status_code == 201 and posted.json()["user"]["nickname"] == "evzijst"
    after = get(sim, f"/repositories/acme/repo-0001/pullrequests/{listed['id']}", token).json()
    assert after["updated_on"] > single["updated_on"]


def test_the_partial_response_fields_add_participants_to_the_pull_request_list(sim):
    token = sim.mint_token().access_token
    path = "/repositories/acme/repo-0001/pullrequests"
    every = {"state": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"], "pagelen": 50}
    plain = get(sim, path, token, **every).json()["values"]
    added = get(sim, path, token, fields="+values.participants", **every).json()["values"]
    assert [p["id"] for p in added] == [p["id"] for p in plain]
    assert all("participants" not in p for p in plain)
    for listed in added:  # the same participants the single pull request shows
        single = get(sim, f"{path}/{listed['id']}", token).json()
        assert listed["participants"] == single["participants"]
        assert listed["comment_count"] == single["comment_count"]
    assert any(p["participants"] for p in added)
    assert "participants" not in get(sim, path, token, fields="-values.title").json()[
        "values"][0]  # other expressions are not applied


def test_no_tracker_no_issues_and_the_removed_cross_workspace_lists_are_gone(sim):
    token = sim.mint_token().access_token
    assert get(sim, "/repositories/acme/repo-0001/issues", token).json()["size"] == 30
    none = get(sim, "/repositories/acme/repo-0002/issues", token)
    assert none.status_code == 404 and "no issue tracker" in none.json()["error"]["message"]
    assert get(sim, "/repositories", token).status_code == 410
    assert get(sim, "/workspaces", token).status_code == 410
    workspaces = get(sim, "/user/workspaces", token).json()["values"]
    assert [w["workspace"]["slug"] for w in workspaces] == ["acme"]


def test_code_endpoints_are_served_so_the_log_can_prove_they_were_not_called(sim):
    token = sim.mint_token().access_token
    for path in ("/repositories/acme/repo-0001/src/main/src/app.py",
                 "/repositories/acme/repo-0001/pullrequests/1/diff",
                 "/repositories/acme/repo-0001/commits"):
        assert get(sim, path, token).status_code == 200
    assert {r.template for r in sim.requests_log} == {
        "/repositories/{workspace}/{repo_slug}/src/{commit}/{path}",
        "/repositories/{workspace}/{repo_slug}/pullrequests/{pull_request_id}/diff",
        "/repositories/{workspace}/{repo_slug}/commits"}


def test_the_rolling_hour_frees_requests_as_they_age(clock, leak_guard):
    with BitbucketSimulator(clock=clock, rate_limit=2, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=0, issues=0, comments=0)
        token = sim.mint_token().access_token
        assert get(sim, "/repositories/acme", token).status_code == 200
        clock.now += 1800
        assert get(sim, "/repositories/acme", token).status_code == 200
        assert get(sim, "/repositories/acme", token).status_code == 429
        clock.now += 1801  # the first request left the window
        assert get(sim, "/repositories/acme", token).status_code == 200
        sim.retry_after = 30
        assert get(sim, "/repositories/acme", token).headers["Retry-After"] == "30"
