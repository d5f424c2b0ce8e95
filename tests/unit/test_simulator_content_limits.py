"""The GitHub simulator enforces GitHub's secondary limit on content creation (80 a minute,
500 an hour per user) and refuses as GitHub does; the clock is the simulator's, moved by hand."""

from __future__ import annotations

import pytest
import requests

from keyway.simulators import GitHubSimulator
from keyway.simulators.github import SECOND_USER
from keyway.simulators.github_content import SECONDARY_DOCS

TIMEOUT = 10


class Clock:
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
        sim.seed_activity("acme", repos=1, prs=1, issues=1, comments=0)
        yield sim


def post(sim, token: str, text: str = "Noted.") -> requests.Response:
    return requests.post(f"{sim.api_url}/repos/acme/repo-0001/issues/1/comments",
                         json={"body": text}, headers={"Authorization": f"token {token}"},
                         timeout=TIMEOUT)


def test_the_81st_comment_in_a_minute_is_refused_as_githubs_secondary_limit(github, clock):
    token = github.mint_token().access_token
    for n in range(80):
        clock.now += 0.5
        assert post(github, token, f"c{n}").status_code == 201
    refused = post(github, token, "one too many")
    assert refused.status_code == 403
    body = refused.json()
    assert body["message"].startswith("You have exceeded a secondary rate limit.")
    assert body["documentation_url"] == SECONDARY_DOCS
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] != "0"  # a secondary, not the primary
    created = github.content_limits.created(github.oauth.account.id)
    assert (created, github.content_limits.refused) == (80, 1)  # the refused one made nothing
    clock.now += int(refused.headers["Retry-After"])
    assert post(github, token, "after the wait").status_code == 201


def test_five_hundred_an_hour_even_when_each_minute_is_under_eighty(github, clock):
    token = github.mint_token().access_token
    for n in range(500):
        clock.now += 1.0 if n % 50 else 61.0  # 50 a minute, never 80
        assert post(github, token, f"c{n}").status_code == 201, n
    refused = post(github, token, "five hundred and one")
    assert refused.status_code == 403
    assert int(refused.headers["Retry-After"]) > 60  # the hour's oldest must leave first


def test_two_users_do_not_share_a_content_budget(github, clock):
    first = github.mint_token().access_token
    second = github.oauth.mint(account=SECOND_USER, scopes=("repo",)).access_token
    for n in range(80):
        assert post(github, first, f"c{n}").status_code == 201
    assert post(github, first).status_code == 403
    assert post(github, second).status_code == 201
