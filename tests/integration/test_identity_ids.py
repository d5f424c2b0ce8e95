"""Identity and personal-token ids are escaped part by part (:func:`shared.ids.identity_id`):
tenant and user ids may contain ``:``, ``/`` or ``%``, and ``tenant a:b, user c`` must never
share a record with ``tenant a, user b:c`` — neither in the business store's ``identities`` nor
in the vault's ``personal_tokens`` — while linking and acting still work end to end."""

from __future__ import annotations

import pytest

from shared import ids
from shared.vault.records import PERSONAL, personal_id
from tests.integration import test_actions
from tests.integration.conftest import query_of
from tests.integration.test_connect_flow import authorize, begin, finish
from tests.integration.test_connect_flow import github as github  # noqa: F401 - fixture

COLLIDING = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c"), ("a/b", "c"), ("a", "b/c"),
             ("a%", "b"), ("a", "%b"), ("_a", "b")]


def test_ids_of_parts_containing_separators_never_collide_and_parse_back():
    made = {personal_id("github", tenant, user): (tenant, user) for tenant, user in COLLIDING}
    assert len(made) == len(COLLIDING)
    for rid, (tenant, user) in made.items():
        assert "/" not in rid and rid.count(":") == 2
        assert ids.parse_identity_id(rid) == ("github", tenant, user)
    assert personal_id("github", "t-1", "member-1") == "github:t-1:member-1"  # plain ids unchanged


def _link(stack, tenant: str, user: str) -> None:
    started = begin(stack, "github", stack.token(tenant, user, "member"), "/api/v1/identities")
    done = finish(stack, "github", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["identity"] == "linked"


def test_linking_in_one_tenant_never_overwrites_another_tenants_identity(local_stack, github):  # noqa: F811
    pairs = COLLIDING[:2]
    for tenant, user in pairs:
        _link(local_stack, tenant, user)
    for tenant, user in pairs:
        identity = local_stack.ports.business.get("identities",
                                                  ids.identity_id("github", tenant, user))
        token = local_stack.ports.vault.get(PERSONAL, personal_id("github", tenant, user))
        assert identity and (identity["tenant"], identity["user"]) == (tenant, user)
        assert token and (token["tenant"], token["user"]) == (tenant, user)


@pytest.fixture
def odd_tenant(monkeypatch, local_stack, leak_guard):
    """test_actions' setup, for a tenant and a member whose ids hold ``:``, ``/`` and ``%``."""
    monkeypatch.setattr(test_actions, "TENANT", "acme:eu/1%")
    sim = test_actions.GitHubSimulator(on_issue=leak_guard.track).start()
    setup = test_actions.Setup(local_stack, sim, "github", tenant="acme:eu/1%")
    setup.member_token = setup.link("mona:x/y%z", test_actions.MEMBER)
    yield setup
    sim.stop()


def test_a_member_whose_ids_hold_separators_acts_with_their_linked_identity(odd_tenant):
    tenant, user = "acme:eu/1%", "mona:x/y%z"
    status, action = odd_tenant.request(user=user, tenant=tenant)
    assert status == 202, action
    odd_tenant.run()
    [comment] = odd_tenant.comments()
    assert comment["user"]["login"] == test_actions.MEMBER.login
    token = odd_tenant.stack.token(tenant, user, "member")
    done = odd_tenant.stack.call("GET", f"/api/v1/actions/{action['id']}", token)
    assert done.get_json()["status"] == "done"
