"""The provider table's GitHub scopes and App permissions are enough for everything keyway
calls, and none of them is spare for those calls: syncing, registering hooks and commenting
with exactly the table's grants succeed against the simulator's token rules
(keyway/simulators/github_tokens.py); with any one grant the rules demand removed, the call
is refused (403, :class:`ProviderRefused` — act-github records it as ``forbidden``, a sync as
``provider.refused``). Narrowing ``providers.json`` below what keyway calls fails here.

``read:org`` and ``read:user`` (the OAuth App's app scopes) are not demanded by any call keyway
makes, on GitHub or in the simulator (``GET /user`` and public repositories need no scope);
:func:`test_no_call_keyway_makes_with_an_app_token_needs_a_scope_beyond_the_table` states
that instead of pretending a removal would fail.
"""

from __future__ import annotations

import pytest
import requests

from keyway.simulators import GitHubSimulator
from keyway.simulators.github_tokens import APP_PERMISSIONS, OAUTH_SCOPES
from shared.actions import targets
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import ProviderRefused
from shared.fetch.github.plan import PLAN
from shared.fetch.sync import SyncRun
from shared.providers import registry
from tests.unit.test_github_app import public_pem
from tests.unit.test_github_tokens import installation_token, key  # noqa: F401 - a fixture

SPEC = registry.get("github")
APP_SCOPES = tuple(SPEC.oauth.scopes["app"])
PERSONAL_SCOPES = tuple(SPEC.oauth.scopes["personal"])
HOOK_SCOPES = tuple(SPEC.webhook_registration.scopes)
PERMISSIONS = dict(SPEC.github_app.permissions)
REPO = "acme/repo-0001"  # public


@pytest.fixture
def github(leak_guard, key):  # noqa: F811
    with GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=3, prs=4, issues=3, comments=5, reviews=4)
        sim.apps.register_app("77", public_pem(key), {**PERMISSIONS, "contents": "read"})
        sim.apps.add_installation(501, "acme")
        yield sim


@pytest.fixture
def ports(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))


def client(ports, sim, token: str, purpose: str = "fetch") -> ProviderClient:
    budget = TokenBudget(ports.business, ports.clock, budget_key("github", "conn-1"))
    return ProviderClient(SPEC, sim.api_url, token, requests.Session(), ports.clock, budget,
                          purpose=purpose)


def sync(ports, sim, token: str, installation: bool = False):
    ports.business.put("connections", "conn-1", {
        "tenant": "t-1", "provider": "github", "status": "active",
        "installation_id": "501" if installation else None})
    return SyncRun(ports, client(ports, sim, token), PLAN, "t-1", "conn-1", 60.0).run()


def without_each(grants: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    return [(g, tuple(x for x in grants if x != g)) for g in grants]


def comment(ports, sim, token: str):
    number = next(iter(sim.activity.find("acme", "repo-0001").by_number))
    owner, repo = REPO.split("/")
    return client(ports, sim, token, "act").post(
        targets.target_for("github", "issue").post,
        {"owner": owner, "repo": repo, "issue_number": str(number)}, {"body": "hi"})


def test_a_comment_needs_exactly_the_table_personal_scopes(ports, github):
    assert comment(ports, github, github.mint_token(PERSONAL_SCOPES).access_token).status == 201
    for removed, fewer in without_each(PERSONAL_SCOPES):
        with pytest.raises(ProviderRefused) as refused:
            comment(ports, github, github.mint_token(fewer).access_token)
        assert refused.value.provider_status == 403, removed


def test_hook_registration_needs_exactly_the_table_webhook_scopes(ports, github):
    owner, repo = REPO.split("/")
    templates, params = SPEC.webhook_registration.templates, {"owner": owner, "repo": repo}
    token = github.mint_token(APP_SCOPES + HOOK_SCOPES).access_token
    assert client(ports, github, token).get(templates["list"], params).status == 200
    for removed, fewer in without_each(HOOK_SCOPES):
        with pytest.raises(ProviderRefused) as refused:
            client(ports, github, github.mint_token(APP_SCOPES + fewer).access_token).get(
                templates["list"], params)
        assert refused.value.provider_status == 403, removed


def test_an_oauth_app_token_with_the_table_scopes_syncs(ports, github):
    result = sync(ports, github, github.mint_token(APP_SCOPES).access_token)
    assert result.finished and result.stats.by_kind["pull_requests"] > 0
    assert {r.status for r in github.requests_log} == {200}


def test_an_installation_token_with_the_table_permissions_syncs_and_needs_each_of_them(
        ports, github, key, leak_guard):  # noqa: F811
    token = installation_token(github, key, leak_guard, **PERMISSIONS)
    assert sync(ports, github, token, installation=True).finished
    for removed in PERMISSIONS:
        fewer = {k: v for k, v in PERMISSIONS.items() if k != removed}
        token = installation_token(github, key, leak_guard, **fewer)
        with pytest.raises(ProviderRefused) as refused:
            sync(ports, github, token, installation=True)
        assert refused.value.provider_status == 403, removed


def test_no_call_keyway_makes_with_an_app_token_needs_a_scope_beyond_the_table():
    hooks = set(SPEC.webhook_registration.templates.values()) | {  # the delivery logs of the
        t for t in SPEC.api.purposes["recover"] if "/hooks/" in t}  # hooks keyway registered
    for template in SPEC.api.allowlist:
        accepted = OAUTH_SCOPES.get(template)
        if accepted is None or not template.startswith("GET ") and template not in hooks:
            continue  # nothing demanded, or a write the app token never makes
        grants = set(APP_SCOPES) | (set(HOOK_SCOPES) if template in hooks else set())
        assert accepted & grants, template
    assert all(t in APP_PERMISSIONS for t in (
        "GET /repos/{owner}/{repo}/pulls", "GET /repos/{owner}/{repo}/issues",
        "GET /repos/{owner}/{repo}/labels"))
