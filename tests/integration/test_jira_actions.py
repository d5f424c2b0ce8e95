"""A comment on a Jira issue under the requesting user's own name: api → vault-jira →
act-jira through their real entry points against the simulator. The body goes out as ADF and
the action id as an invisible comment property, which is how a redelivery finds an earlier
post instead of posting twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from keyway.simulators import JiraSimulator
from keyway.simulators.oauth_model import Account
from shared.clock import isoformat
from shared.providers import registry
from shared.records import adf
from shared.records import jira as jira_records
from shared.records import store as records
from shared.records.model import Context
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.integration.test_actions import TENANT, Setup, _lose_the_acknowledgement

ADMIN = Account("5b10a2844c20165700ede21g", 583231, "Admin Person")
MEMBER = Account("5b10ac8d82e05b22cc7d4ef5", 777, "Mona Member")
SCOPES = ("read:jira-work", "read:jira-user", "write:jira-work", "offline_access")


class JiraSetup(Setup):
    """Setup for Jira: the connection knows its site; the repository is a project."""

    def __init__(self, stack, sim: JiraSimulator) -> None:
        self.stack, self.sim, self.provider, self.ports = stack, sim, "jira", stack.ports
        self.ports.keys.ensure_key("vault-jira")
        admin = sim.oauth.mint(account=ADMIN, scopes=SCOPES)
        self.service = vault_handlers.service("jira", self.ports)
        self.service.store_app_token(TENANT, "conn-1", "admin-1", self._tokens(admin))
        self.ports.business.put("connections", "conn-1", {
            "tenant": TENANT, "provider": "jira", "kind": "app", "status": "active",
            "api_base": sim.site_api_url, "created_by": "admin-1",
            "site": {"id": sim.cloud_id, "url": sim.site_url, "name": "acme"}})
        sim.seed_activity("acme", repos=1, issues=3, comments=2)
        raw = requests.get(f"{sim.site_api_url}/rest/api/3/project/search", timeout=10,
                           headers={"Authorization": f"Bearer {admin.access_token}"}).json()
        ctx = Context(TENANT, "jira", "conn-1", observed_at=isoformat(datetime.now(UTC)),
                      site=sim.cloud_id)
        self.repo = jira_records.repository(raw["values"][0], ctx)
        records.upsert(self.ports.business, self.repo)
        self.member_token = self.link("member-1", MEMBER)

    def link(self, user: str, account: Account, scopes: tuple[str, ...] = SCOPES) -> str:
        issued = self.sim.oauth.mint(account=account, scopes=scopes)
        self.service.store_personal_token(TENANT, user, TokenSet(
            issued.access_token, issued.refresh_token,
            datetime.now(UTC) + timedelta(hours=1), scopes))
        self.ports.business.put("identities", f"jira:{TENANT}:{user}", {
            "tenant": TENANT, "provider": "jira", "user": user, "base_url": None,
            "account": {"id": account.login, "login": account.name},
            "linked_at": isoformat(datetime.now(UTC))})
        return issued.access_token

    def comments(self, number: int = 1, parent_kind: str = "issue") -> list[dict]:
        token = self.sim.oauth.mint(account=ADMIN, scopes=SCOPES).access_token
        found = requests.get(
            f"{self.sim.site_api_url}/rest/api/3/issue/{self.repo['name']}-{number}/comment",
            params={"expand": "properties", "maxResults": 100}, timeout=10,
            headers={"Authorization": f"Bearer {token}"}).json()["comments"]
        return [c for c in found if c.get("properties")]


@pytest.fixture
def jira(local_stack, leak_guard):
    sim = JiraSimulator(on_issue=leak_guard.track).start()
    yield JiraSetup(local_stack, sim)
    sim.stop()


def test_a_member_comments_on_a_jira_issue_under_their_own_account(jira):
    status, action = jira.request(parent_kind="issue", number=1)
    assert status == 202
    requested, job = jira.run()
    assert jira.member_token not in str([requested.body, job.body])  # sealed
    [comment] = jira.comments()
    assert comment["author"]["accountId"] == MEMBER.login  # attributed to the member
    assert adf.to_text(comment["body"]) == "Looks good to me"  # ADF, no visible marker
    assert comment["properties"] == [{"key": "keyway.action",
                                      "value": {"action_id": action["id"]}}]
    status, done = jira.status(action["id"])
    assert status == 200 and done["status"] == "done"
    assert done["provider_comment_id"] == comment["id"]
    assert done["url"] == f"{jira.sim.site_url}/browse/{jira.repo['name']}-1" \
        f"?focusedCommentId={comment['id']}"
    stored = jira.ports.business.get("comments", done["comment"])
    assert stored["author"]["external_id"] == MEMBER.login
    assert stored["body"] == "Looks good to me"


def test_a_redelivered_jira_job_leaves_one_comment(jira):
    _, action = jira.request(parent_kind="issue")
    _, job = jira.run()
    for _ in range(2):
        jira.deliver("action-jobs-jira", job)
    assert len(jira.comments()) == 1
    assert jira.status(action["id"])[1]["status"] == "done"


def test_a_lost_acknowledgement_is_reconciled_by_the_comment_property(jira):
    _, action = jira.request(parent_kind="issue")
    requested, _ = jira.run()
    before = _lose_the_acknowledgement(jira, action["id"])
    jira.deliver("action-requests-jira", requested)  # the vault re-seals
    [fresh] = jira.pull("action-jobs-jira")
    jira.sim.clear_log()
    jira.deliver("action-jobs-jira", fresh)
    assert len(jira.comments()) == 1
    assert all(r.method == "GET" for r in jira.sim.requests_log)  # found, not posted again
    _, done = jira.status(action["id"])
    assert done["status"] == "done"
    assert done["provider_comment_id"] == before["provider_comment_id"]


def test_jira_has_no_pull_requests_to_comment_on(jira):
    status, problem = jira.request(parent_kind="pull_request")
    assert status == 400 and "no pull_request" in problem["detail"]
    assert jira.pull("action-requests-jira") == []


def test_a_missing_jira_issue_fails_the_action(jira):
    _, action = jira.request(parent_kind="issue", number=999)
    jira.run()
    _, failed = jira.status(action["id"])
    assert (failed["status"], failed["reason"]) == ("failed", "target_not_found")


def test_a_jira_comment_without_write_jira_work_fails_as_insufficient_scope(jira):
    jira.link("member-1", MEMBER, scopes=registry.get("jira").oauth.scopes["app"])
    _, action = jira.request(parent_kind="issue")
    jira.run()
    _, failed = jira.status(action["id"])
    assert (failed["status"], failed["reason"]) == ("failed", "insufficient_scope")
    assert jira.comments() == []
    assert [r.status for r in jira.sim.requests_log if r.method == "POST"] == [401]
