"""Comments on Bitbucket pull requests and issues, posted with the requesting member's own
personal token: api → vault-bitbucket → act-bitbucket through the real entry points and the
embedded bus, against the simulator over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from keyway.simulators import BitbucketSimulator
from keyway.simulators.oauth_model import Account
from shared.clock import isoformat
from shared.providers import registry
from shared.records import bitbucket as bb_records
from shared.records import store as records
from shared.records.model import Context
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.integration.test_actions import Setup, _lose_the_acknowledgement

TENANT = "t-1"
ADMIN, MEMBER = Account("evzijst", 7_001, "Erik van Zijst"), Account("mona", 7_777, "Mona")
SCOPES = registry.get("bitbucket").oauth.scopes  # what the consumer is ticked with, per kind


class BitbucketSetup(Setup):
    """:class:`tests.integration.test_actions.Setup` with Bitbucket's repository, identity
    (the account uuid) and comment listing."""

    def __init__(self, stack, sim) -> None:  # not super(): its setup is GitHub/GitLab-shaped
        self.stack, self.sim, self.provider, self.ports = stack, sim, "bitbucket", stack.ports
        admin = sim.oauth.mint(account=ADMIN, scopes=SCOPES["app"])
        self.service = vault_handlers.service("bitbucket", self.ports)
        self.service.store_app_token(TENANT, "conn-1", "admin-1", self._tokens(admin))
        self.ports.business.put("connections", "conn-1", {
            "tenant": TENANT, "provider": "bitbucket", "kind": "app", "status": "active",
            "api_base": sim.api_url, "created_by": "admin-1"})
        self.repo = self._repository(admin.access_token)
        self.member_token = self.link("member-1", MEMBER)

    def _repository(self, admin_token: str) -> dict:
        seeded = self.sim.seed_activity("acme", repos=1, prs=2, issues=2, comments=1)[0]
        raw = requests.get(f"{self.sim.api_url}/repositories/{seeded['full_name']}", timeout=10,
                           headers={"Authorization": f"Bearer {admin_token}"}).json()
        record = bb_records.repository(raw, Context(TENANT, "bitbucket", "conn-1",
                                                    observed_at=isoformat(datetime.now(UTC))))
        records.upsert(self.ports.business, record)
        return record

    def link(self, user: str, account: Account, scopes: tuple[str, ...] = SCOPES["personal"]
             ) -> str:
        issued = self.sim.oauth.mint(account=account, scopes=scopes)
        self.service.store_personal_token(TENANT, user, TokenSet(
            issued.access_token, issued.refresh_token, datetime.now(UTC) + timedelta(hours=2),
            scopes))
        self.ports.business.put("identities", f"bitbucket:{TENANT}:{user}", {
            "tenant": TENANT, "provider": "bitbucket", "user": user, "base_url": None,
            "account": {"id": self.sim.user_json_fields(account)["uuid"],
                        "login": account.login},
            "linked_at": isoformat(datetime.now(UTC))})
        return issued.access_token

    def comments(self, number: int = 1, parent_kind: str = "pull_request") -> list[dict]:
        token = self.sim.oauth.mint(account=ADMIN, scopes=SCOPES["app"]).access_token
        kind = "pullrequests" if parent_kind == "pull_request" else "issues"
        found = requests.get(
            f"{self.sim.api_url}/repositories/{self.repo['full_name']}/{kind}/{number}/comments",
            params={"pagelen": 100}, timeout=10,
            headers={"Authorization": f"Bearer {token}"}).json()["values"]
        return [c for c in found if "keyway-action" in c["content"]["raw"]]


@pytest.fixture
def bitbucket(local_stack, leak_guard):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    yield BitbucketSetup(local_stack, sim)
    sim.stop()


def test_a_member_comments_on_a_pull_request_under_their_own_name(bitbucket):
    admin_quota = bitbucket.sim.quota_used(ADMIN.id)
    status, action = bitbucket.request()
    assert status == 202 and action["status"] == "pending"
    requested, job = bitbucket.run()
    assert bitbucket.member_token not in json.dumps([requested.body, job.body])  # sealed
    assert bitbucket.sim.quota_used(ADMIN.id) == admin_quota  # the app token never acted
    assert bitbucket.sim.quota_used(MEMBER.id) == 1  # one POST with the member's own token
    [comment] = bitbucket.comments()
    assert comment["user"]["uuid"] == bitbucket.sim.user_json_fields(MEMBER)["uuid"]
    # Bitbucket escapes HTML: the marker is a Markdown link reference, which renders as nothing
    assert comment["content"]["raw"] == (
        f"Looks good to me\n\n[//]: # (keyway-action:{action['id']})")
    status, done = bitbucket.status(action["id"])
    assert status == 200 and done["status"] == "done"
    assert done["provider_comment_id"] == str(comment["id"])
    assert done["url"] == comment["links"]["html"]["href"]
    stored = bitbucket.ports.business.get("comments", done["comment"])
    assert stored["author"]["login"] == "mona" and stored["body"] == comment["content"]["raw"]


def test_a_member_comments_on_an_issue(bitbucket):
    status, action = bitbucket.request(number=1, parent_kind="issue")
    assert status == 202
    bitbucket.run()
    [comment] = bitbucket.comments(1, "issue")
    assert comment["user"]["nickname"] == "mona"
    assert bitbucket.status(action["id"])[1]["status"] == "done"


def test_an_issue_comment_without_issue_write_fails_as_insufficient_scope(bitbucket):
    # a consumer ticked "Issues: Read" only: Bitbucket refuses the POST (its API description
    # asks issue:write for it), and the action says so instead of a bare provider refusal
    bitbucket.link("member-1", MEMBER, scopes=("account", "pullrequest", "issue"))
    _, action = bitbucket.request(number=1, parent_kind="issue")
    bitbucket.run()
    _, failed = bitbucket.status(action["id"])
    assert (failed["status"], failed["reason"]) == ("failed", "insufficient_scope")
    assert bitbucket.comments(1, "issue") == []
    assert [r.status for r in bitbucket.sim.requests_log if r.method == "POST"] == [403]


def test_a_bitbucket_job_delivered_three_times_leaves_exactly_one_comment(bitbucket):
    _, action = bitbucket.request()
    _, job = bitbucket.run()
    for _ in range(2):
        bitbucket.deliver("action-jobs-bitbucket", job)
    assert len(bitbucket.comments()) == 1
    assert bitbucket.status(action["id"])[1]["status"] == "done"


def test_a_lost_acknowledgement_is_found_by_its_marker_not_posted_again(bitbucket):
    _, action = bitbucket.request()
    requested, _ = bitbucket.run()
    before = _lose_the_acknowledgement(bitbucket, action["id"])
    bitbucket.deliver("action-requests-bitbucket", requested)  # the vault seals again
    [fresh] = bitbucket.pull("action-jobs-bitbucket")
    bitbucket.sim.clear_log()
    bitbucket.deliver("action-jobs-bitbucket", fresh)
    assert len(bitbucket.comments()) == 1
    assert {r.method for r in bitbucket.sim.requests_log} == {"GET"}  # listed, not posted
    _, done = bitbucket.status(action["id"])
    assert done["status"] == "done"
    assert done["provider_comment_id"] == before["provider_comment_id"]


def test_a_comment_on_a_missing_bitbucket_thread_fails_permanently(bitbucket):
    _, action = bitbucket.request(number=999)
    bitbucket.run()
    _, failed = bitbucket.status(action["id"])
    assert failed["status"] == "failed" and failed["reason"] == "target_not_found"
