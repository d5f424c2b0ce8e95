"""Who signs in at a simulator: every simulator has at least two accounts; an authorization
request's ``login`` picks one, and with the sign-in page on (``make run``'s sandbox) a request
without a known ``login`` shows the accounts to choose from instead of approving anyone."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from keyway.simulators import BitbucketSimulator, GitHubSimulator, GitLabSimulator, JiraSimulator

CALLBACK = "http://127.0.0.1:8080/oauth-sim/callback"
AUTHORIZE = {GitHubSimulator: "/login/oauth/authorize", GitLabSimulator: "/oauth/authorize",
             BitbucketSimulator: "/site/oauth2/authorize", JiraSimulator: "/authorize"}
EXTRA = {GitLabSimulator: {"response_type": "code", "scope": "read_api"},
         BitbucketSimulator: {"response_type": "code"},
         JiraSimulator: {"audience": "api.atlassian.com", "response_type": "code",
                         "prompt": "consent", "scope": "read:jira-work offline_access"}}
TIMEOUT = 5


@pytest.fixture(params=list(AUTHORIZE), ids=lambda cls: cls.__name__)
def sim(request, leak_guard):
    with request.param(on_issue=leak_guard.track) as simulator:
        simulator.register_client("sim-client", "sim-secret", [CALLBACK])
        yield simulator


def authorize(sim, **params: str) -> requests.Response:
    query = {"client_id": "sim-client", "redirect_uri": CALLBACK, "state": "s-1",
             **EXTRA.get(type(sim), {}), **params}
    return requests.get(sim.oauth_url + AUTHORIZE[type(sim)], params=query,
                        allow_redirects=False, timeout=TIMEOUT)


def signed_in(sim, answer: requests.Response):
    """The account the code in a callback redirect was issued for."""
    assert answer.status_code == 302, answer.text
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    return sim.oauth.exchange_code("sim-client", "sim-secret", code, CALLBACK, None).info.account


def test_every_simulator_has_two_distinct_accounts(sim):
    accounts = sim.accounts
    assert len(accounts) >= 2
    assert len({a.id for a in accounts}) == len({a.login for a in accounts}) == len(accounts)
    assert accounts[0] == sim.account


def test_login_picks_who_signs_in_and_the_default_signs_in_without_it(sim):
    default, other = sim.accounts[0], sim.accounts[1]
    assert signed_in(sim, authorize(sim)) == default
    assert signed_in(sim, authorize(sim, login=other.login)) == other


def test_sign_in_page_lists_every_account_and_approves_nobody(sim):
    sim.sign_in_page()
    page = authorize(sim, state='"><script>alert(1)</script>')
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.text  # the request's values are escaped
    links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.text)]
    assert sorted(parse_qs(urlsplit(link).query)["login"][0] for link in links) == sorted(
        a.login for a in sim.accounts)
    other = sim.accounts[1]
    chosen = next(link for link in links if f"login={other.login}" in link)
    answer = requests.get(chosen, allow_redirects=False, timeout=TIMEOUT)
    assert signed_in(sim, answer) == other
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["state"] == [
        '"><script>alert(1)</script>']


def test_sign_in_page_shown_again_for_an_unknown_login(sim):
    sim.sign_in_page()
    answer = authorize(sim, login="nobody-here")
    assert answer.status_code == 200 and "Sign in" in answer.text
