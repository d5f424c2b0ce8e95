"""The metadata-only provider client against the GitHub and GitLab simulators over real HTTP.

Promise 5: a request outside the allowlist raises before a byte leaves — proven by the
simulator's request log staying empty. Promise 6: https only (http to loopback simulators).
Promise 8: every token the simulators issue is tracked by the leak guard, so no test here may
let one reach a log line, an exception or a repr.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared.bootstrap import build
from shared.config import Config
from shared.errors import InvalidInput
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ApiResponse, ProviderClient
from shared.fetch.errors import (
    BudgetExhausted,
    EgressRefused,
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
    TokenRejected,
)
from shared.http_egress import RedirectRefused
from shared.providers import registry
from tests.support import FakeClock

GITHUB, GITLAB = registry.get("github"), registry.get("gitlab")
ORG_REPOS, USER_REPOS = "GET /orgs/{org}/repos", "GET /user/repos"
PULLS = "GET /repos/{owner}/{repo}/pulls"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sim_clock(clock: FakeClock):
    """The simulators' epoch-seconds clock, following the fake clock (same reset times)."""
    return lambda: clock.now().timestamp()


@pytest.fixture
def github(clock, leak_guard):
    with GitHubSimulator(clock=sim_clock(clock), on_issue=leak_guard.track) as sim:
        sim.seed("acme", repos=150)
        yield sim


@pytest.fixture
def gitlab(clock, leak_guard):
    with GitLabSimulator(clock=sim_clock(clock), on_issue=leak_guard.track) as sim:
        sim.seed("acme", projects=150)
        yield sim


@pytest.fixture
def store(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})).business


@pytest.fixture
def budget(store, clock) -> TokenBudget:
    return TokenBudget(store, clock, budget_key("github", "conn-1"), reserve=10)


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def client_for(sim, clock, session, budget=None, **options) -> ProviderClient:
    spec = options.pop("spec", GITHUB if isinstance(sim, GitHubSimulator) else GITLAB)
    token = options.pop("token", None) or sim.mint_token().access_token
    options.setdefault("purpose", "fetch")
    return ProviderClient(spec, sim.api_url, token, session, clock, budget, **options)


@pytest.fixture
def gh(github, clock, session, budget) -> ProviderClient:
    return client_for(github, clock, session, budget, timeout=5)


@pytest.fixture
def gl(gitlab, clock, session) -> ProviderClient:
    return client_for(gitlab, clock, session, timeout=5)


# ---- allowlisted requests -------------------------------------------------------------------
def test_allowlisted_get_carries_the_headers_and_follows_link_pages(gh, github, budget):
    first = gh.get(ORG_REPOS, {"org": "acme"})
    assert isinstance(first, ApiResponse) and first.status == 200 and len(first.body) == 100
    assert first.etag and first.next_url and not first.not_modified
    second = gh.get_next(first.next_url, ORG_REPOS)
    assert len(second.body) == 50 and second.next_url is None
    sent = github.requests_log
    assert [r.path for r in sent] == ["/api/v3/orgs/acme/repos"] * 2
    assert sent[0].query == {"per_page": "100"}
    assert sent[0].headers["authorization"] == "Bearer"  # the log keeps only the scheme
    assert sent[0].headers["accept"] == "application/vnd.github+json"
    assert sent[0].headers["x-github-api-version"] == "2022-11-28"
    assert sent[0].headers["user-agent"] == "keyway"
    assert budget.snapshot()["remaining"] == 4998 and budget.snapshot()["in_flight"] == 0


class CountingStore:
    """The business store, counting transactions (each one a budget write or read-modify)."""

    def __init__(self, inner) -> None:
        self.inner, self.transactions = inner, 0

    def transaction(self, fn, **kwargs):
        self.transactions += 1
        return self.inner.transaction(fn, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_request_costs_two_budget_transactions_and_still_records_the_headers(
        github, clock, session, store):
    counting = CountingStore(store)
    budget = TokenBudget(counting, clock, budget_key("github", "conn-1"), reserve=10)
    gh = client_for(github, clock, session, budget, timeout=5)
    gh.get(ORG_REPOS, {"org": "acme"})
    assert counting.transactions == 2  # acquire; release + the answer's rate-limit headers
    snapshot = budget.snapshot()
    assert snapshot["remaining"] == 4999 and snapshot["in_flight"] == 0
    gh.get(ORG_REPOS, {"org": "acme"})
    assert counting.transactions == 4 and budget.snapshot()["remaining"] == 4998


def test_single_resources_get_no_per_page_and_explicit_params_win(gh, github):
    assert gh.get("GET /user").body["login"] == "octocat"
    gh.get(USER_REPOS, params={"per_page": "5", "sort": "created"})
    assert [r.query for r in github.requests_log] == [{}, {"per_page": "5", "sort": "created"}]


def test_gitlab_keyset_pages_through_link_with_json_accept(gl, gitlab):
    params = {"pagination": "keyset", "order_by": "id", "sort": "asc"}
    first = gl.get("GET /projects", params=params)
    second = gl.get_next(first.next_url, "GET /projects")
    assert len(first.body) == 100 and len(second.body) == 50 and second.next_url is None
    assert second.body[0]["id"] == first.body[-1]["id"] + 1
    assert gitlab.requests_log[0].headers["accept"] == "application/json"
    assert "x-github-api-version" not in gitlab.requests_log[0].headers


def test_offset_pagination_builds_the_next_url_from_x_next_page(gitlab, clock, session):
    offset = dataclasses.replace(GITLAB, api=dataclasses.replace(GITLAB.api,
                                                                 pagination="offset"))
    client = client_for(gitlab, clock, session, spec=offset)
    first = client.get("GET /projects", params={"order_by": "id"})
    assert first.next_url.startswith(gitlab.api_url + "/projects?") and "page=2" in first.next_url
    second = client.get_next(first.next_url, "GET /projects")
    assert len(second.body) == 50 and second.next_url is None


def test_gitlab_project_path_is_encoded_as_one_segment(gl, gitlab):
    try:  # the endpoint may or may not be simulated yet; what matters is what was sent
        gl.get("GET /projects/{id}", {"id": "acme/project-0001"})
    except NotFoundAtProvider:
        pass
    (sent,) = gitlab.requests_log
    assert sent.path == "/api/v4/projects/acme/project-0001"  # werkzeug decodes %2F


# ---- egress refused before anything is sent -------------------------------------------------
FORBIDDEN = [
    (GITHUB, "GET /repos/{owner}/{repo}/contents/{path}", {"path": "README.md"}),
    (GITHUB, "GET /repos/{owner}/{repo}/git/trees/{tree_sha}", {"tree_sha": "main"}),
    (GITHUB, "GET /repos/{owner}/{repo}/git/blobs/{sha}", {"sha": "abc"}),
    (GITHUB, "GET /repos/{owner}/{repo}/git/refs", {}),
    (GITHUB, "GET /repos/{owner}/{repo}/tarball/{ref}", {"ref": "main"}),
    (GITHUB, "GET /repos/{owner}/{repo}/zipball/{ref}", {"ref": "main"}),
    (GITHUB, "GET /repos/{owner}/{repo}/compare/{basehead}", {"basehead": "a...b"}),
    (GITHUB, "GET /repos/{owner}/{repo}/pulls/{pull_number}/files", {"pull_number": "1"}),
    (GITHUB, "GET /repos/{owner}/{repo}/readme", {}),
    (GITHUB, "GET /repos/{owner}/{repo}/commits", {}),
    (GITHUB, "GET /repos/acme/repo-0001/contents/README.md", {}),
    (GITLAB, "GET /projects/{id}/repository/files/{file_path}/raw", {"file_path": "a.py"}),
    (GITLAB, "GET /projects/{id}/repository/archive", {}),
    (GITLAB, "GET /projects/{id}/repository/tree", {}),
    (GITLAB, "GET /projects/{id}/repository/blobs/{sha}/raw", {"sha": "abc"}),
    (GITLAB, "GET /projects/{id}/repository/compare", {}),
    (GITLAB, "GET /projects/{id}/merge_requests/{merge_request_iid}/diffs",
     {"merge_request_iid": "1"}),
    (GITLAB, "GET /projects/{id}/snippets/{snippet_id}/raw", {"snippet_id": "1"}),
]


@pytest.mark.parametrize(("spec", "template", "extra"), FORBIDDEN,
                         ids=[f"{s.name}:{t}" for s, t, _ in FORBIDDEN])
def test_forbidden_endpoint_is_refused_before_a_request_is_sent(
        spec, template, extra, github, gitlab, clock, session):
    sim = github if spec is GITHUB else gitlab
    client = client_for(sim, clock, session)
    base = {"owner": "acme", "repo": "repo-0001"} if spec is GITHUB else {"id": "10001"}
    params = {k: v for k, v in {**base, **extra}.items() if "{" + k + "}" in template}
    with pytest.raises(EgressRefused) as refused:
        client.get(template, params)
    assert refused.value.key == "egress.refused" and refused.value.status == 403
    assert sim.requests_log == []


@pytest.mark.parametrize("bad", ["../contents", "%2F..", "..", "x/../../contents/a",
                                 "repo-0001/../../contents", "a\\b", "%2e%2e"])
def test_path_parameter_injection_is_refused(gh, github, bad):
    with pytest.raises(EgressRefused):
        gh.get(PULLS, {"owner": "acme", "repo": bad})
    assert github.requests_log == []


@pytest.mark.parametrize("bad", ["acme/../../x", "acme%2F..%2Fx", "acme//x", "/acme", ".."])
def test_gitlab_encoded_project_path_cannot_traverse(gl, gitlab, bad):
    with pytest.raises(EgressRefused):
        gl.get("GET /projects/{id}/merge_requests", {"id": bad})
    assert gitlab.requests_log == []


@pytest.mark.parametrize("call", [
    lambda c: c.get(PULLS, {"owner": "acme"}),  # missing parameter
    lambda c: c.get(PULLS, {"owner": "acme", "repo": ""}),  # empty parameter
    lambda c: c.get(ORG_REPOS, {"org": "acme", "path": "x"}),  # unexpected parameter
    lambda c: c.post("GET /user", {}, json={}),  # method does not match the template
    lambda c: c.post("DELETE /repos/{owner}/{repo}/hooks/{hook_id}",
                     {"owner": "a", "repo": "b", "hook_id": "1"}, json={}),
    lambda c: c.get("POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
                    {"owner": "a", "repo": "b", "issue_number": "1"}),
])
def test_template_misuse_is_refused(gh, github, call):
    with pytest.raises(EgressRefused):
        call(gh)
    assert github.requests_log == []


def test_link_to_another_host_or_a_forbidden_path_is_refused(gh, github):
    host, port = "127.0.0.1", github.port
    for url in ["https://evil.example/api/v3/user/repos?page=2",
                f"http://localhost:{port}/api/v3/user/repos?page=2",
                f"http://{host}:{port + 1}/api/v3/user/repos?page=2",
                f"https://{host}:{port}/api/v3/user/repos?page=2",
                f"http://user@{host}:{port}/api/v3/user/repos?page=2",
                f"http://{host}:{port}/user/repos?page=2",
                f"http://{host}:{port}/api/v3/repos/acme/repo-0001/contents/README.md",
                f"http://{host}:{port}/api/v3/orgs/acme/repos?page=2",  # another template
                f"http://{host}:{port}/api/v3/orgs/acme%2F..%2F..%2Fx/repos?page=2",
                f"http://{host}:{port}/api/v3/user/repos/../../repos/a/b/contents",
                "not a url"]:
        with pytest.raises(EgressRefused):
            gh.get_next(url, USER_REPOS)
    assert github.requests_log == []


def test_a_provider_link_header_pointing_elsewhere_is_never_followed(gh, github):
    evil = '<https://evil.example/api/v3/user/repos?page=2>; rel="next"'
    github.fail_next(200, body=b"[]", headers={"Link": evil})
    page = gh.get(USER_REPOS)
    assert page.next_url == "https://evil.example/api/v3/user/repos?page=2"
    with pytest.raises(EgressRefused):
        gh.get_next(page.next_url, USER_REPOS)
    assert len(github.requests_log) == 1


@pytest.mark.parametrize("base", ["http://api.example.com/api/v3", "https://169.254.169.254",
                                  "https://metadata.google.internal/api", "https://10.0.0.8",
                                  "https://u:p@api.github.com", "https://api.github.com?x=1",
                                  "ftp://api.github.com"])
def test_api_base_must_be_https_or_loopback_http(base, clock, session):
    with pytest.raises(EgressRefused):
        ProviderClient(GITHUB, base, "gho_" + "a" * 36, session, clock, purpose="fetch")


def test_public_https_base_is_accepted_without_sending_anything(clock, session):
    client = ProviderClient(GITHUB, "https://api.github.com", "gho_" + "b" * 36, session, clock,
                            purpose="fetch")
    assert "api.github.com" in repr(client)


@pytest.mark.parametrize("base", ["https://127.0.0.1/api/v3", "http://127.0.0.1:9/api/v3",
                                  "http://localhost:9/api/v3", "https://[::1]/api/v3",
                                  "https://localhost/api/v3"])
def test_loopback_bases_are_refused_outside_local_mode(base, clock, session, monkeypatch):
    """Promise 6: loopback is a simulator's address, allowed only on the local backends."""
    monkeypatch.setattr("shared.providers.ssrf.default_resolver",
                        lambda host, port: ["127.0.0.1"])
    with pytest.raises(EgressRefused):
        ProviderClient(GITHUB, base, "gho_" + "a" * 36, session, clock,
                       local_mode=False, purpose="fetch")
    ProviderClient(GITHUB, base, "gho_" + "a" * 36, session, clock,
                   local_mode=True, purpose="fetch")


@pytest.mark.parametrize("answer", [["10.1.2.3"], ["93.184.216.34", "169.254.169.254"],
                                    ["127.0.0.1"], ["::ffff:192.168.0.1"]])
def test_a_name_resolving_to_a_private_address_is_refused_outside_local_mode(
        answer, clock, session, monkeypatch):
    """A self-hosted base URL checked at connect may later resolve somewhere internal: the
    client checks what the name resolves to each time it is built."""
    monkeypatch.setattr("shared.providers.ssrf.default_resolver", lambda host, port: answer)
    with pytest.raises(EgressRefused):
        ProviderClient(GITHUB, "https://ghe.example.com/api/v3", "gho_" + "a" * 36, session,
                       clock, local_mode=False, purpose="fetch")


def test_a_name_resolving_to_public_addresses_is_accepted(clock, session, monkeypatch):
    monkeypatch.setattr("shared.providers.ssrf.default_resolver",
                        lambda host, port: ["140.82.112.6"])
    client = ProviderClient(GITHUB, "https://ghe.example.com/api/v3", "gho_" + "b" * 36,
                            session, clock, local_mode=False, purpose="fetch")
    assert "ghe.example.com" in repr(client)


def test_redirects_are_not_followed(gh, github):
    github.fail_next(302, headers={"Location": f"{github.api_url}/repos/a/b/contents/x"})
    with pytest.raises(RedirectRefused) as refused:
        gh.get(USER_REPOS)
    assert refused.value.key == "provider.redirect_refused"
    assert len(github.requests_log) == 1


# ---- ETags, retries, rate limits ------------------------------------------------------------
def test_304_returns_not_modified_and_spends_no_budget(gh, github, budget):
    first = gh.get(USER_REPOS)
    before = budget.snapshot()
    again = gh.get(USER_REPOS, etag=first.etag)
    assert again.not_modified and again.status == 304 and again.body is None
    assert again.next_url == first.next_url  # a 304 still says where the next page is
    assert github.requests_log[-1].headers["if-none-match"] == first.etag
    after = budget.snapshot()
    assert after["remaining"] == before["remaining"] == 4999
    assert after["observed_at"] == before["observed_at"]  # nothing new: no write


def test_two_502s_then_success_takes_three_attempts_with_backoff(gh, github, clock):
    github.fail_next(502, count=2)
    start = clock.monotonic()
    assert gh.get("GET /user").status == 200
    assert [r.status for r in github.requests_log] == [502, 502, 200]
    assert clock.monotonic() - start == pytest.approx(1.5)  # 0.5 s + 1 s via clock.sleep


def test_persistent_5xx_gives_provider_unavailable_after_max_attempts(gh, github, budget):
    github.fail_next(502, count=5)
    with pytest.raises(ProviderUnavailable) as failed:
        gh.get("GET /user")
    assert failed.value.retryable and len(github.requests_log) == 3
    assert budget.snapshot()["in_flight"] == 0  # every lease was released


def test_timeouts_are_retried_then_provider_unavailable(github, clock, session, budget):
    client = client_for(github, clock, session, budget, timeout=0.2)
    github.stall_next(0.6, count=3)
    with pytest.raises(ProviderUnavailable, match="timeout"):
        client.get("GET /user")
    deadline = time.monotonic() + 5
    while len(github.requests_log) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # stalled requests are logged when the simulator finally answers
    assert len(github.requests_log) == 3 and budget.snapshot()["in_flight"] == 0


def test_post_is_never_retried(github, clock, session):
    acting = client_for(github, clock, session, purpose="act")
    github.fail_next(502, count=3)
    with pytest.raises(ProviderUnavailable):
        acting.post("POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
                {"owner": "acme", "repo": "repo-0001", "issue_number": 7}, json={"body": "hi"})
    assert len(github.requests_log) == 1 and github.requests_log[0].method == "POST"


HOOKS, HOOK = "POST /repos/{owner}/{repo}/hooks", "DELETE /repos/{owner}/{repo}/hooks/{hook_id}"
REPO = {"owner": "acme", "repo": "repo-0001"}


@pytest.fixture
def hooks_client(github, clock, session) -> ProviderClient:
    token = github.mint_token(scopes=("admin:repo_hook",)).access_token
    return client_for(github, clock, session, token=token, timeout=5)


def test_delete_removes_an_allowlisted_hook_and_answers_204(hooks_client, github):
    created = hooks_client.post(HOOKS, REPO, json={
        "name": "web", "config": {"url": "https://keyway.example/webhook-github/c/c-1"}})
    hook_id = str(created.body["id"])
    gone = hooks_client.delete(HOOK, {**REPO, "hook_id": hook_id})
    assert (gone.status, gone.body) == (204, None)
    assert [h.id for h in github.hooks.deleted] == [int(hook_id)]
    with pytest.raises(NotFoundAtProvider):  # an unknown hook: 404 maps like any other
        hooks_client.delete(HOOK, {**REPO, "hook_id": hook_id})


def test_delete_is_never_retried(hooks_client, github):
    github.fail_next(502, count=3)
    with pytest.raises(ProviderUnavailable):
        hooks_client.delete(HOOK, {**REPO, "hook_id": "1"})
    assert [r.method for r in github.requests_log] == ["DELETE"]


@pytest.mark.parametrize("call", [
    lambda c: c.delete("DELETE /repos/{owner}/{repo}", REPO),  # not allowlisted at all
    lambda c: c.delete("DELETE /repos/{owner}/{repo}/git/refs/{ref}", {**REPO, "ref": "x"}),
    lambda c: c.delete(HOOKS, REPO),  # a POST template used to DELETE
    lambda c: c.delete(HOOK, {**REPO, "hook_id": "../../contents/x"}),  # traversal in a param
    lambda c: c.delete(HOOK, {**REPO, "hook_id": "%2e%2e"}),
    lambda c: c.delete(HOOK, REPO),  # a missing parameter
])
def test_delete_outside_the_allowlist_is_refused_before_a_byte_leaves(hooks_client, github,
                                                                       call):
    with pytest.raises(EgressRefused):
        call(hooks_client)
    assert github.requests_log == [] and github.hooks.deleted == []


def test_a_refusal_carries_the_provider_status_and_nothing_of_the_body(hooks_client, github):
    body = {"name": "web", "config": {"url": "https://keyway.example/webhook-github/c/c-1"}}
    hooks_client.post(HOOKS, REPO, json=body)
    with pytest.raises(ProviderRefused) as refused:
        hooks_client.post(HOOKS, REPO, json=body)
    assert refused.value.provider_status == 422
    assert "already exists" not in str(refused.value)
    again = pickle.loads(pickle.dumps(refused.value))  # noqa: S301 - our own bytes
    assert (again.provider_status, again.key) == (422, "provider.refused")


def test_429_with_retry_after_is_rate_limited_and_sent_once(gl, gitlab, clock):
    gitlab.fail_next(429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as limited:
        gl.get("GET /projects")
    assert limited.value.retry_at == clock.now() + timedelta(seconds=120)
    assert limited.value.key == "provider.rate_limited" and len(gitlab.requests_log) == 1


def test_403_with_retry_after_http_date_is_rate_limited(gh, github, clock):
    when = clock.now() + timedelta(seconds=300)
    github.fail_next(403, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(RateLimited) as limited:
        gh.get(USER_REPOS)
    assert limited.value.retry_at == when and len(github.requests_log) == 1


def test_secondary_rate_limit_message_without_headers_waits_a_minute(gh, github, clock):
    body = b'{"message": "You have exceeded a secondary rate limit. Please wait."}'
    github.fail_next(403, body=body)
    with pytest.raises(RateLimited) as limited:
        gh.get(USER_REPOS)
    assert limited.value.retry_at == clock.now() + timedelta(seconds=60)


def test_primary_limit_exhausted_waits_for_the_reset_and_blocks_the_budget(gh, github, budget):
    github.rate_limit.set_remaining(github.oauth.account.id, 0)
    with pytest.raises(RateLimited) as limited:
        gh.get(USER_REPOS)
    reset = int(github.requests_log[-1].time) // 3600 * 3600 + 3600
    assert limited.value.retry_at.timestamp() == reset
    assert budget.blocked_until() == limited.value.retry_at
    with pytest.raises(BudgetExhausted) as spent:  # the next fetch does not even try
        gh.get(USER_REPOS)
    assert spent.value.retry_at == limited.value.retry_at and len(github.requests_log) == 1


def test_budget_refusal_sends_nothing_but_actions_may_use_the_reserve(
        github, clock, session, budget):
    budget.observe(limit=5000, remaining=8, reset_at=clock.now() + timedelta(hours=1))
    with pytest.raises(BudgetExhausted):
        client_for(github, clock, session, budget).get("GET /user")
    assert github.requests_log == []
    acting = client_for(github, clock, session, budget, purpose="act")
    with pytest.raises(NotFoundAtProvider):  # sent (no such issue there): not held back
        acting.get("GET /repos/{owner}/{repo}/issues/{issue_number}/comments",
                   {"owner": "acme", "repo": "repo-0001", "issue_number": "7"})
    assert len(github.requests_log) == 1


def test_other_answers_map_to_the_error_tree(gh, github):
    github.fail_next(200, body=b"{not json")
    with pytest.raises(MalformedResponse):
        gh.get("GET /user")
    with pytest.raises(NotFoundAtProvider):
        gh.get(ORG_REPOS, {"org": "nobody"})
    github.fail_next(422)
    with pytest.raises(ProviderRefused):
        gh.get(USER_REPOS)


def test_a_body_over_the_cap_is_malformed(gh):
    gh.max_body_bytes = 2000
    with pytest.raises(MalformedResponse, match="over 2000 bytes"):
        gh.get(USER_REPOS)


def test_401_is_token_rejected(github, clock, session, leak_guard):
    bogus = leak_guard.track("gho_" + "Z" * 36)
    client = client_for(github, clock, session, token=bogus)
    with pytest.raises(TokenRejected) as rejected:
        client.get("GET /user")
    assert rejected.value.status == 401 and leak_guard.exception_leaks(rejected.value) == []


# ---- the token never leaks ------------------------------------------------------------------
def test_the_token_never_appears_in_errors_reprs_or_logs(github, clock, session, budget,
                                                         leak_guard, caplog):
    token = leak_guard.track(github.mint_token().access_token)
    client = client_for(github, clock, session, budget, token=token)
    caplog.set_level(logging.DEBUG, logger="shared.fetch.client")
    github.fail_next(502, count=3)
    github.fail_next(429, headers={"Retry-After": "5"})
    github.fail_next(401)
    github.fail_next(200, body=b"<html>")
    failures = []
    for call in [lambda: client.get("GET /user"), lambda: client.get("GET /user"),
                 lambda: client.get("GET /user"), lambda: client.get("GET /user"),
                 lambda: client.get("GET /repos/{owner}/{repo}/readme", {}),
                 lambda: client.get_next("https://evil.example/x", USER_REPOS)]:
        with pytest.raises(Exception) as caught:  # noqa: B017, PT011 - any failure, checked
            call()
        failures.append(caught.value)
    assert [type(f) for f in failures] == [ProviderUnavailable, RateLimited, TokenRejected,
                                           MalformedResponse, EgressRefused, EgressRefused]
    for failure in failures:
        assert leak_guard.exception_leaks(failure) == []
    assert token not in repr(client) and token not in str(client)
    with pytest.raises(TypeError):
        pickle.dumps(client)
    client.get("GET /user")
    assert any(r.getMessage() == "provider.request" for r in caplog.records)
    assert all(token not in r.getMessage() and token not in str(getattr(r, "fields", ""))
               for r in caplog.records)


def test_a_malformed_token_is_refused_without_echoing_it(clock, session):
    bad = "gho_" + "c" * 20 + "\r\nX-Evil: 1"
    with pytest.raises(InvalidInput) as refused:
        ProviderClient(GITHUB, "https://api.github.com", bad, session, clock, purpose="fetch")
    assert "c" * 20 not in str(refused.value)


# ---- Bitbucket: pagelen, repeated parameters, next in the body, a budget counted locally -----
BITBUCKET = registry.get("bitbucket")
BB_PULLS = "GET /repositories/{workspace}/{repo_slug}/pullrequests"
BB_REPO = {"workspace": "acme", "repo_slug": "repo-0001"}


@pytest.fixture
def bitbucket(clock, leak_guard):
    from keyway.simulators import BitbucketSimulator

    with BitbucketSimulator(clock=sim_clock(clock), on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=120, issues=0, comments=0)
        yield sim


@pytest.fixture
def bb(bitbucket, clock, session, store) -> ProviderClient:
    budget = TokenBudget(store, clock, budget_key("bitbucket", "conn-1"), reserve=10)
    return client_for(bitbucket, clock, session, budget, spec=BITBUCKET, timeout=5)


def test_bitbucket_pages_by_pagelen_through_the_bodys_next_and_repeats_state(bb, bitbucket):
    first = bb.get(BB_PULLS, BB_REPO, {"state": ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")})
    assert bitbucket.requests_log[0].query["pagelen"] == "50"
    assert "per_page" not in bitbucket.requests_log[0].query
    assert first.body["size"] == 120 and len(first.body["values"]) == 50
    assert first.next_url == first.body["next"]
    second = bb.get_next(first.next_url, BB_PULLS)
    assert second.body["page"] == 2
    assert bitbucket.requests_log[1].query == {**bitbucket.requests_log[0].query, "page": "2"}


def test_a_bitbucket_next_link_elsewhere_is_refused_before_sending(bb, bitbucket):
    host = f"http://127.0.0.1:{bitbucket.port}"
    for url in ["https://api.bitbucket.org/2.0/repositories/acme/repo-0001/pullrequests?page=2",
                f"{host}/2.0/repositories/acme/repo-0001/src/main/README.md",
                f"{host}/2.0/repositories/acme/repo-0001/pullrequests/1/diff",
                f"{host}/2.0/repositories?page=2"]:
        with pytest.raises(EgressRefused):
            bb.get_next(url, BB_PULLS)
    assert bitbucket.requests_log == []


def test_every_bitbucket_answer_is_counted_against_the_local_budget(bb, bitbucket, store):
    for _ in range(3):
        bb.get(BB_PULLS, BB_REPO)
    doc = store.get("rate_budgets", budget_key("bitbucket", "conn-1"))
    assert (doc["limit"], doc["remaining"]) == (1000, 997)


def test_a_bitbucket_429_without_headers_waits_a_minute_and_blocks_the_budget(
        bb, bitbucket, clock):
    bitbucket.rate_limit_next()
    with pytest.raises(RateLimited) as limited:
        bb.get(BB_PULLS, BB_REPO)
    assert limited.value.retry_at == clock.now() + timedelta(seconds=60)
    with pytest.raises(BudgetExhausted):
        bb.get(BB_PULLS, BB_REPO)
    assert len(bitbucket.requests_log) == 1
    clock.advance(61)
    assert bb.get(BB_PULLS, BB_REPO).status == 200
