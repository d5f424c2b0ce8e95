"""The GitHub and GitLab simulators over real HTTP: OAuth authorization code + PKCE in each
provider's wire format, refresh rotation, revocation, pagination, ETags, rate-limit headers,
the request log and fault injection.

Every token a simulator issues is tracked by the leak guard, so these tests also prove the
simulators never log one.
"""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator, s256

CLIENT_ID, CLIENT_SECRET = "Iv1.8a61f9b3a7aba766", "sim-client-secret-1"
GH_CALLBACK = "http://127.0.0.1:8080/oauth-github/callback"
GL_CALLBACK = "http://127.0.0.1:8080/oauth-gitlab/callback"
TIMEOUT = 5


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def github(clock, leak_guard):
    with GitHubSimulator(clock=clock, on_issue=leak_guard.track) as sim:
        sim.register_client(CLIENT_ID, CLIENT_SECRET, [GH_CALLBACK])
        yield sim


@pytest.fixture
def gitlab(clock, leak_guard):
    with GitLabSimulator(clock=clock, on_issue=leak_guard.track) as sim:
        sim.register_client(CLIENT_ID, CLIENT_SECRET, [GL_CALLBACK])
        yield sim


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# ---- helpers: one step of each provider's flow ----------------------------------------------
def github_code(sim, challenge: str | None = None, **extra: str) -> str:
    params = {"client_id": CLIENT_ID, "redirect_uri": GH_CALLBACK, "state": "st-1",
              "scope": "read:org", **extra}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    answer = requests.get(f"{sim.url}/login/oauth/authorize", params=params,
                          allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302
    return query_of(answer.headers["Location"])["code"]


def github_token(sim, as_json: bool = True, **fields: str) -> requests.Response:
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **fields}
    headers = {"Accept": "application/json"} if as_json else {}
    return requests.post(f"{sim.url}/login/oauth/access_token", data=data, headers=headers,
                         timeout=TIMEOUT)


def gitlab_code(sim, challenge: str, scope: str = "read_api read_user") -> str:
    params = {"client_id": CLIENT_ID, "redirect_uri": GL_CALLBACK, "response_type": "code",
              "state": "st-2", "scope": scope, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    answer = requests.get(f"{sim.url}/oauth/authorize", params=params, allow_redirects=False,
                          timeout=TIMEOUT)
    assert answer.status_code == 302
    return query_of(answer.headers["Location"])["code"]


def gitlab_token(sim, **fields: str) -> requests.Response:
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **fields}
    return requests.post(f"{sim.url}/oauth/token", data=data, timeout=TIMEOUT)


def gitlab_exchange(sim) -> dict:
    verifier, challenge = pkce()
    answer = gitlab_token(sim, grant_type="authorization_code", code=gitlab_code(sim, challenge),
                          redirect_uri=GL_CALLBACK, code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def api_get(url: str, token: str, scheme: str = "Bearer", **params) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"{scheme} {token}"}, params=params,
                        timeout=TIMEOUT)


# ---- GitHub OAuth ---------------------------------------------------------------------------
def test_github_full_pkce_flow_answers_form_encoded_github_app_tokens(github):
    verifier, challenge = pkce()
    answer = requests.get(f"{github.url}/login/oauth/authorize", allow_redirects=False,
                          timeout=TIMEOUT, params={
                              "client_id": CLIENT_ID, "redirect_uri": GH_CALLBACK,
                              "state": "xyz", "code_challenge": challenge,
                              "code_challenge_method": "S256"})
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(GH_CALLBACK + "?")
    assert query_of(location)["state"] == "xyz"

    token = github_token(github, as_json=False, code=query_of(location)["code"],
                         redirect_uri=GH_CALLBACK, code_verifier=verifier)
    assert token.status_code == 200
    assert token.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    fields = query_of("?" + token.text)
    assert re.fullmatch(r"ghu_[0-9A-Za-z]{36}", fields["access_token"])
    assert re.fullmatch(r"ghr_[0-9A-Za-z]{76}", fields["refresh_token"])
    assert (fields["expires_in"], fields["refresh_token_expires_in"]) == ("28800", "15897600")
    assert fields["token_type"] == "bearer"
    for scheme in ("Bearer", "token"):
        user = api_get(f"{github.api_url}/user", fields["access_token"], scheme)
        assert user.status_code == 200
        assert user.json()["login"] == "octocat"


def test_github_token_endpoint_answers_json_when_asked(github):
    verifier, challenge = pkce()
    answer = github_token(github, code=github_code(github, challenge), code_verifier=verifier)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["expires_in"] == 28800 and body["refresh_token_expires_in"] == 15897600
    assert body["scope"] == "" and body["token_type"] == "bearer"


def test_github_oauth_app_tokens_never_expire_and_carry_no_refresh_token(github, clock):
    github.expiring_tokens = False
    body = github_token(github, code=github_code(github, scope="repo read:org")).json()
    assert re.fullmatch(r"gho_[0-9A-Za-z]{36}", body["access_token"])
    assert body["scope"] == "repo,read:org"
    assert "refresh_token" not in body and "expires_in" not in body
    clock.advance(365 * 86400)
    assert api_get(f"{github.api_url}/user", body["access_token"]).status_code == 200


def _wrong_code(sim, verifier, code):
    return github_token(sim, code=code[::-1], code_verifier=verifier)


def _wrong_verifier(sim, verifier, code):
    return github_token(sim, code=code, code_verifier=pkce()[0])


def _reused_code(sim, verifier, code):
    assert "access_token" in github_token(sim, code=code, code_verifier=verifier).json()
    return github_token(sim, code=code, code_verifier=verifier)


def _other_redirect(sim, verifier, code):
    return github_token(sim, code=code, code_verifier=verifier,
                        redirect_uri="http://127.0.0.1:8080/elsewhere")


def _wrong_secret(sim, verifier, code):
    return github_token(sim, code=code, code_verifier=verifier, client_secret="nope")


@pytest.mark.parametrize(("attempt", "error"), [
    (_wrong_code, "bad_verification_code"), (_wrong_verifier, "bad_verification_code"),
    (_reused_code, "bad_verification_code"), (_other_redirect, "redirect_uri_mismatch"),
    (_wrong_secret, "incorrect_client_credentials")])
def test_github_token_errors_come_with_http_200(github, attempt, error):
    verifier, challenge = pkce()
    answer = attempt(github, verifier, github_code(github, challenge))
    assert answer.status_code == 200
    body = answer.json()
    assert body["error"] == error and "access_token" not in body
    assert body["error_description"] and body["error_uri"].startswith("https://docs.github.com")


def test_github_errors_are_form_encoded_without_accept_json(github):
    answer = github_token(github, as_json=False, code="0" * 20)
    assert answer.status_code == 200
    assert query_of("?" + answer.text)["error"] == "bad_verification_code"


def test_a_replayed_code_also_revokes_the_token_it_issued(github):
    code = github_code(github)
    token = github_token(github, code=code).json()["access_token"]
    github_token(github, code=code)
    assert api_get(f"{github.api_url}/user", token).status_code == 401


def test_github_code_expires_after_ten_minutes(github, clock):
    code = github_code(github)
    clock.advance(601)
    assert github_token(github, code=code).json()["error"] == "bad_verification_code"


@pytest.mark.parametrize("provider", ["github", "gitlab"])
@pytest.mark.parametrize("params", [
    {"client_id": CLIENT_ID, "redirect_uri": "https://attacker.example/cb"},
    {"client_id": CLIENT_ID, "redirect_uri": "REGISTERED/extra"},
    {"client_id": "unknown-client", "redirect_uri": "REGISTERED"}])
def test_an_untrusted_authorize_request_gets_a_page_and_no_redirect(request, provider, params):
    sim = request.getfixturevalue(provider)
    registered = GH_CALLBACK if provider == "github" else GL_CALLBACK
    path = "/login/oauth/authorize" if provider == "github" else "/oauth/authorize"
    params = {k: v.replace("REGISTERED", registered) for k, v in params.items()}
    answer = requests.get(sim.url + path, params={**params, "response_type": "code",
                                                  "state": "s"},
                          allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_a_denied_consent_redirects_with_access_denied_and_the_state(github):
    github.set_consent(False)
    answer = requests.get(f"{github.url}/login/oauth/authorize", allow_redirects=False,
                          params={"client_id": CLIENT_ID, "state": "s-9"}, timeout=TIMEOUT)
    assert answer.status_code == 302
    query = query_of(answer.headers["Location"])
    assert (query["error"], query["state"]) == ("access_denied", "s-9")
    assert "code" not in query


def test_github_refresh_rotates_and_the_old_pair_stops_working(github):
    first = github_token(github, code=github_code(github)).json()
    second = github_token(github, grant_type="refresh_token",
                          refresh_token=first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["expires_in"] == 28800
    again = github_token(github, grant_type="refresh_token",
                         refresh_token=first["refresh_token"])
    assert again.status_code == 200 and again.json()["error"] == "bad_refresh_token"
    assert api_get(f"{github.api_url}/user", first["access_token"]).status_code == 401
    assert api_get(f"{github.api_url}/user", second["access_token"]).status_code == 200
    assert {first["refresh_token"], first["access_token"]} <= github.revoked


def test_concurrent_refreshes_with_one_refresh_token_succeed_exactly_once(github):
    refresh = github_token(github, code=github_code(github)).json()["refresh_token"]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: github_token(
            github, grant_type="refresh_token", refresh_token=refresh).json(), range(10)))
    assert sum("access_token" in a for a in answers) == 1
    assert sum(a.get("error") == "bad_refresh_token" for a in answers) == 9


def test_github_access_token_expires_after_eight_hours(github, clock):
    token = github_token(github, code=github_code(github)).json()["access_token"]
    assert github.access_tokens[token].expires_at == clock.now + 28800
    clock.advance(28800)
    answer = api_get(f"{github.api_url}/user", token)
    assert answer.status_code == 401 and answer.json()["message"] == "Bad credentials"


def test_github_grant_deletion_revokes_and_the_token_gets_401(github):
    token = github_token(github, code=github_code(github)).json()["access_token"]
    url = f"{github.api_url}/applications/{CLIENT_ID}/grant"
    refused = requests.delete(url, auth=(CLIENT_ID, "wrong"), json={"access_token": token},
                              timeout=TIMEOUT)
    assert refused.status_code == 401
    done = requests.delete(url, auth=(CLIENT_ID, CLIENT_SECRET), json={"access_token": token},
                           timeout=TIMEOUT)
    assert done.status_code == 204
    answer = api_get(f"{github.api_url}/user", token)
    assert answer.status_code == 401
    assert answer.json()["message"] == "Bad credentials"
    assert answer.json()["documentation_url"].startswith("https://docs.github.com")


# ---- GitHub REST ----------------------------------------------------------------------------
def walk_links(url: str, token: str, **params) -> list[requests.Response]:
    pages = [api_get(url, token, **params)]
    while 'rel="next"' in pages[-1].headers.get("Link", ""):
        nxt = re.search(r'<([^>]+)>; rel="next"', pages[-1].headers["Link"]).group(1)
        pages.append(api_get(nxt, token))
        assert len(pages) < 100
    return pages


@pytest.mark.parametrize("path", ["/orgs/acme/repos", "/user/repos"])
def test_github_link_pagination_walks_every_seeded_repo_exactly_once(github, path):
    seeded = github.seed("acme", 47)
    other = github.seed("globex", 5)
    wanted = seeded if path.startswith("/orgs") else seeded + other
    token = github.mint_token().access_token
    pages = walk_links(github.api_url + path, token, per_page=10)
    ids = [repo["id"] for page in pages for repo in page.json()]
    assert sorted(ids) == sorted(r["id"] for r in wanted)
    assert len(pages) == -(-len(wanted) // 10)
    assert 'rel="last"' in pages[0].headers["Link"]
    assert 'rel="prev"' in pages[-1].headers["Link"] and 'rel="first"' in pages[-1].headers["Link"]
    repo = pages[0].json()[0]
    for field in ("id", "node_id", "name", "full_name", "private", "html_url", "description",
                  "fork", "created_at", "updated_at", "pushed_at", "default_branch",
                  "archived", "visibility", "open_issues_count"):
        assert field in repo
    assert {"login", "id", "type"} <= repo["owner"].keys()


def test_github_unknown_org_is_404(github):
    answer = api_get(f"{github.api_url}/orgs/nobody/repos", github.mint_token().access_token)
    assert answer.status_code == 404 and answer.json()["message"] == "Not Found"


def test_github_304_spends_no_quota(github):
    token = github.mint_token().access_token
    first = api_get(f"{github.api_url}/user", token)
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert first.headers["X-RateLimit-Resource"] == "core"
    assert int(first.headers["X-RateLimit-Used"]) == 1
    cached = requests.get(f"{github.api_url}/user", timeout=TIMEOUT, headers={
        "Authorization": f"Bearer {token}", "If-None-Match": first.headers["ETag"]})
    assert cached.status_code == 304 and cached.content == b""
    assert int(cached.headers["X-RateLimit-Remaining"]) == remaining
    again = api_get(f"{github.api_url}/user", token)
    assert int(again.headers["X-RateLimit-Remaining"]) == remaining - 1


def test_github_exhausted_budget_answers_403_until_the_reset(github, clock):
    token = github.mint_token().access_token
    github.rate_limit.set_remaining(github.oauth.account.id, 0)
    answer = api_get(f"{github.api_url}/user", token)
    assert answer.status_code == 403
    assert answer.json()["message"].startswith("API rate limit exceeded")
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    clock.now = int(answer.headers["X-RateLimit-Reset"])
    assert api_get(f"{github.api_url}/user", token).status_code == 200


# ---- GitLab OAuth ---------------------------------------------------------------------------
def test_gitlab_full_pkce_flow_answers_json_with_two_hour_tokens(gitlab, clock):
    body = gitlab_exchange(gitlab)
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope",
                         "created_at"}
    assert re.fullmatch(r"[0-9a-f]{64}", body["access_token"])
    assert re.fullmatch(r"[0-9a-f]{64}", body["refresh_token"])
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 7200)
    assert body["scope"] == "read_api read_user" and body["created_at"] == int(clock.now)
    user = api_get(f"{gitlab.api_url}/user", body["access_token"])
    assert user.status_code == 200 and user.json()["username"] == "jdoe"


def test_gitlab_set_user_decides_who_approves_and_who_the_api_sees(gitlab):
    gitlab.set_user("alice", 77, "Alice Liddell")
    user = api_get(f"{gitlab.api_url}/user", gitlab_exchange(gitlab)["access_token"]).json()
    assert (user["username"], user["id"], user["name"]) == ("alice", 77, "Alice Liddell")


def _gl_wrong_verifier(sim, verifier, code):
    return gitlab_token(sim, grant_type="authorization_code", code=code,
                        redirect_uri=GL_CALLBACK, code_verifier=pkce()[0])


def _gl_reused(sim, verifier, code):
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": GL_CALLBACK,
              "code_verifier": verifier}
    assert gitlab_token(sim, **fields).status_code == 200
    return gitlab_token(sim, **fields)


def _gl_other_redirect(sim, verifier, code):
    return gitlab_token(sim, grant_type="authorization_code", code=code,
                        redirect_uri=GL_CALLBACK + "/x", code_verifier=verifier)


def _gl_no_verifier(sim, verifier, code):
    return gitlab_token(sim, grant_type="authorization_code", code=code,
                        redirect_uri=GL_CALLBACK)


@pytest.mark.parametrize("attempt", [_gl_wrong_verifier, _gl_reused, _gl_other_redirect,
                                     _gl_no_verifier])
def test_gitlab_bad_grants_answer_invalid_grant_400(gitlab, attempt):
    verifier, challenge = pkce()
    answer = attempt(gitlab, verifier, gitlab_code(gitlab, challenge))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "authorization grant is invalid" in answer.json()["error_description"]


def test_gitlab_wrong_client_secret_is_invalid_client_401(gitlab):
    verifier, challenge = pkce()
    answer = gitlab_token(gitlab, grant_type="authorization_code", client_secret="nope",
                          code=gitlab_code(gitlab, challenge), redirect_uri=GL_CALLBACK,
                          code_verifier=verifier)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_gitlab_refresh_rotates_and_the_old_refresh_token_is_refused(gitlab):
    first = gitlab_exchange(gitlab)
    second = gitlab_token(gitlab, grant_type="refresh_token",
                          refresh_token=first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    again = gitlab_token(gitlab, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert api_get(f"{gitlab.api_url}/user", second.json()["access_token"]).status_code == 200


def test_gitlab_revoked_token_gets_401_and_its_refresh_token_dies_too(gitlab):
    body = gitlab_exchange(gitlab)
    revoked = requests.post(f"{gitlab.url}/oauth/revoke", timeout=TIMEOUT, data={
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": body["access_token"]})
    assert revoked.status_code == 200 and revoked.json() == {}
    answer = api_get(f"{gitlab.api_url}/user", body["access_token"])
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    assert "revoked" in answer.json()["error_description"]
    refreshed = gitlab_token(gitlab, grant_type="refresh_token",
                             refresh_token=body["refresh_token"])
    assert refreshed.status_code == 400


def test_gitlab_expired_token_gets_401_invalid_token(gitlab, clock):
    token = gitlab_exchange(gitlab)["access_token"]
    clock.advance(7200)
    answer = api_get(f"{gitlab.api_url}/user", token)
    assert answer.status_code == 401 and "expired" in answer.json()["error_description"]
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


# ---- GitLab REST ----------------------------------------------------------------------------
@pytest.mark.parametrize("sort", ["asc", "desc"])
def test_gitlab_keyset_pagination_walks_every_project_once(gitlab, sort):
    projects = gitlab.seed("acme", 53) + gitlab.seed("globex", 8)
    token = gitlab.mint_token().access_token
    pages = walk_links(f"{gitlab.api_url}/projects", token, membership="true", per_page=10,
                       pagination="keyset", order_by="id", sort=sort)
    ids = [project["id"] for page in pages for project in page.json()]
    assert ids == sorted((p["id"] for p in projects), reverse=sort == "desc")
    assert len(pages) == 7 and "X-Total" not in pages[0].headers
    project = pages[0].json()[0]
    for field in ("id", "name", "path", "path_with_namespace", "namespace", "visibility",
                  "web_url", "default_branch", "created_at", "last_activity_at", "archived"):
        assert field in project
    assert {"id", "name", "path", "kind", "full_path"} <= project["namespace"].keys()


def test_gitlab_keyset_needs_order_by_id(gitlab):
    answer = api_get(f"{gitlab.api_url}/projects", gitlab.mint_token().access_token,
                     pagination="keyset", order_by="name")
    assert answer.status_code == 405


def test_gitlab_offset_pagination_reports_totals_and_next_pages(gitlab):
    gitlab.seed("acme", 45)
    token = gitlab.mint_token().access_token
    seen, page = [], "1"
    while page:
        answer = api_get(f"{gitlab.api_url}/projects", token, per_page=20, page=page)
        assert (answer.headers["X-Total"], answer.headers["X-Total-Pages"]) == ("45", "3")
        seen += [p["id"] for p in answer.json()]
        page = answer.headers["X-Next-Page"]
    assert len(seen) == len(set(seen)) == 45


def test_gitlab_304_spends_no_quota(gitlab):
    gitlab.seed("acme", 3)
    token = gitlab.mint_token().access_token
    first = api_get(f"{gitlab.api_url}/projects", token)
    assert first.headers["RateLimit-Limit"] == "2000"
    observed = first.headers["RateLimit-Observed"]
    cached = requests.get(f"{gitlab.api_url}/projects", timeout=TIMEOUT, headers={
        "Authorization": f"Bearer {token}", "If-None-Match": first.headers["ETag"]})
    assert cached.status_code == 304
    assert cached.headers["RateLimit-Observed"] == observed
    assert cached.headers["RateLimit-Remaining"] == first.headers["RateLimit-Remaining"]


def test_gitlab_exhausted_budget_answers_429_with_retry_after(gitlab):
    token = gitlab.mint_token().access_token
    gitlab.rate_limit.set_remaining(gitlab.oauth.account.id, 0)
    answer = api_get(f"{gitlab.api_url}/user", token)
    assert answer.status_code == 429 and 1 <= int(answer.headers["Retry-After"]) <= 60


# ---- shared plumbing ------------------------------------------------------------------------
def test_the_request_log_records_every_request_without_credentials(github):
    github.clear_log()
    code = github_code(github)
    token = github_token(github, code=code).json()["access_token"]
    api_get(f"{github.api_url}/user", token)
    requests.post(f"{github.url}/login/oauth/access_token", timeout=TIMEOUT,
                  params={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": "x"})
    requests.get(f"{github.url}/nowhere", timeout=TIMEOUT)
    log = github.requests_log
    assert [(e.method, e.path, e.status) for e in log] == [
        ("GET", "/login/oauth/authorize", 302), ("POST", "/login/oauth/access_token", 200),
        ("GET", "/api/v3/user", 200), ("POST", "/login/oauth/access_token", 200),
        ("GET", "/nowhere", 404)]
    assert log[2].headers["authorization"] == "Bearer"
    assert log[3].query["client_secret"] == "[redacted]"
    assert all(token not in repr(e) and CLIENT_SECRET not in repr(e) for e in log)
    github.clear_log()
    assert github.requests_log == []


def test_fail_next_injects_a_502_once(github):
    token = github.mint_token().access_token
    github.fail_next(502)
    assert api_get(f"{github.api_url}/user", token).status_code == 502
    assert api_get(f"{github.api_url}/user", token).status_code == 200
    assert [e.status for e in github.requests_log] == [502, 200]


def test_fail_next_can_target_a_path_and_stall_next_times_out_a_client(gitlab):
    token = gitlab.mint_token().access_token
    gitlab.fail_next(503, count=2, path_prefix="/api/v4/projects")
    assert api_get(f"{gitlab.api_url}/user", token).status_code == 200
    assert api_get(f"{gitlab.api_url}/projects", token).status_code == 503
    assert api_get(f"{gitlab.api_url}/projects", token).status_code == 503
    assert api_get(f"{gitlab.api_url}/projects", token).status_code == 200
    gitlab.stall_next(0.5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{gitlab.api_url}/user", timeout=0.1,
                     headers={"Authorization": f"Bearer {token}"})
    assert api_get(f"{gitlab.api_url}/user", token).status_code == 200


@pytest.mark.parametrize(("provider", "body"), [
    ("github", {"message": "Not Found", "documentation_url": "https://docs.github.com/rest",
                "status": "404"}),
    ("gitlab", {"error": "404 Not Found"})])
def test_unknown_paths_answer_the_providers_404(request, provider, body):
    sim = request.getfixturevalue(provider)
    answer = requests.get(f"{sim.url}/api/v9/nothing", timeout=TIMEOUT)
    assert (answer.status_code, answer.json()) == (404, body)


def test_simulators_serve_on_loopback_only():
    for sim in (GitHubSimulator(), GitLabSimulator()):
        with sim:
            assert urlsplit(sim.url).hostname == "127.0.0.1"
            assert sim.api_url.startswith(sim.url + "/api/v")
        with pytest.raises(RuntimeError):
            _ = sim.url
