"""User-attributed comments end to end: the api (in-process, bearer JWTs) → vault-P → act-P
through their real entry points and the embedded bus, against the GitHub and GitLab
simulators over HTTP. Every API response passes the leak guard; every token the simulators
issue is tracked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from keyway.simulators.oauth_model import Account
from shared import ids, messages, policy
from shared.actions.handler import MAX_RESEALS
from shared.actions.model import doc_id
from shared.clock import isoformat
from shared.crypto.channels import ChannelKeys
from shared.crypto.seal import new_claims, seal
from shared.entry import event_function
from shared.errors import PolicyViolation
from shared.fetch.errors import ProviderUnavailable
from shared.records import github as github_records
from shared.records import gitlab as gitlab_records
from shared.records import store as records
from shared.records.model import Context
from shared.routing import handlers_for
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.unit.test_entry import pubsub_event

TENANT, OTHER = "t-1", "t-2"
ADMIN, MEMBER = Account("octocat", 583231, "The Octocat"), Account("mona", 777, "Mona")


class Setup:
    """One provider wired up: an admin's app connection, a synced repository, a member with
    a linked identity (personal token in the vault, identity record in the business store)."""

    tenant, connection, owner = TENANT, "conn-1", "acme"  # defaults for subclasses too

    def __init__(self, stack, sim, provider: str, tenant: str = TENANT,
                 connection: str = "conn-1", owner: str = "acme") -> None:
        self.stack, self.sim, self.provider, self.ports = stack, sim, provider, stack.ports
        self.tenant, self.connection, self.owner = tenant, connection, owner
        admin = sim.oauth.mint(account=ADMIN, scopes=("repo", "api"))
        self.service = vault_handlers.service(provider, self.ports)
        self.service.store_app_token(tenant, connection, "admin-1", self._tokens(admin))
        self.ports.business.put("connections", connection, {
            "tenant": tenant, "provider": provider, "kind": "app", "status": "active",
            "api_base": sim.api_url, "created_by": "admin-1"})
        self.repo = self._repository(admin.access_token)
        self.member_token = self.link("member-1", MEMBER)

    @staticmethod
    def _tokens(issued) -> TokenSet:
        return TokenSet(issued.access_token, issued.refresh_token,
                        datetime.now(UTC) + timedelta(hours=1), ("repo",))

    def _repository(self, admin_token: str) -> dict:
        seeded = self.sim.seed_activity(self.owner, repos=1, prs=2, issues=2, comments=1)[0]
        path = (f"/repos/{seeded['full_name']}" if self.provider == "github"
                else f"/projects/{seeded['id']}")
        raw = requests.get(self.sim.api_url + path, timeout=10,
                           headers={"Authorization": f"Bearer {admin_token}"}).json()
        normalize = github_records if self.provider == "github" else gitlab_records
        record = normalize.repository(raw, Context(self.tenant, self.provider, self.connection,
                                                   observed_at=isoformat(datetime.now(UTC))))
        records.upsert(self.ports.business, record)
        return record

    def link(self, user: str, account: Account, scopes: tuple[str, ...] = ("repo", "api")
             ) -> str:
        issued = self.sim.oauth.mint(account=account, scopes=scopes)
        self.service.store_personal_token(self.tenant, user, self._tokens(issued))
        self.ports.business.put("identities", ids.identity_id(self.provider, self.tenant, user), {
            "tenant": self.tenant, "provider": self.provider, "user": user, "base_url": None,
            "account": {"id": str(account.id), "login": account.login},
            "linked_at": isoformat(datetime.now(UTC))})
        return issued.access_token

    def request(self, user: str = "member-1", tenant: str | None = None, number: int = 1,
                parent_kind: str = "pull_request", **extra):
        body = {"connection": self.connection, "kind": "comment", "body": "Looks good to me",
                "target": {"repository": self.repo["id"], "parent_kind": parent_kind,
                           "number": number}, **extra}
        token = self.stack.token(tenant or self.tenant, user, "member")
        response = self.stack.call("POST", "/api/v1/actions", token, json=body)
        return response.status_code, json.loads(response.get_data())

    def status(self, action_id: str, tenant: str | None = None) -> tuple[int, dict]:
        token = self.stack.token(tenant or self.tenant, "member-1", "member")
        response = self.stack.call("GET", f"/api/v1/actions/{action_id}", token)
        return response.status_code, json.loads(response.get_data())

    def pull(self, topic: str) -> list[messages.Inbound]:
        got: list = []
        self.ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
        return [messages.decode(topic, m.data, m.attributes, m.message_id) for m in got]

    def deliver(self, topic: str, inbound: messages.Inbound) -> None:
        subscriber = policy.ROUTES[topic].subscriber
        receive = event_function(subscriber, handlers_for(subscriber))
        receive(pubsub_event(topic, inbound.sender, inbound.type, inbound.body))

    def run(self) -> tuple[messages.Inbound, messages.Inbound]:
        """Carry one action request through vault-P to act-P; the two messages, for replays."""
        [requested] = self.pull(f"action-requests-{self.provider}")
        self.deliver(f"action-requests-{self.provider}", requested)
        [job] = self.pull(f"action-jobs-{self.provider}")
        self.last_job = job
        self.deliver(f"action-jobs-{self.provider}", job)
        return requested, job

    def comments(self, number: int = 1, parent_kind: str = "pull_request") -> list[dict]:
        token = self.sim.oauth.mint(account=ADMIN, scopes=("repo", "api")).access_token
        if self.provider == "github":
            path = f"/repos/{self.repo['full_name']}/issues/{number}/comments"
        else:
            kind = "merge_requests" if parent_kind == "pull_request" else "issues"
            path = f"/projects/{self.repo['external_id']}/{kind}/{number}/notes"
        found = requests.get(self.sim.api_url + path, timeout=10, params={"per_page": 100},
                             headers={"Authorization": f"Bearer {token}"}).json()
        return [c for c in found if "keyway-action" in c["body"]]


@pytest.fixture(params=["github", "gitlab"])
def setup(request, local_stack, leak_guard):
    sim_class = GitHubSimulator if request.param == "github" else GitLabSimulator
    sim = sim_class(on_issue=leak_guard.track).start()
    yield Setup(local_stack, sim, request.param)
    sim.stop()


@pytest.fixture
def github(local_stack, leak_guard):
    sim = GitHubSimulator(on_issue=leak_guard.track).start()
    yield Setup(local_stack, sim, "github")
    sim.stop()


def author(provider: str, comment: dict) -> str:
    return comment["user"]["login"] if provider == "github" else comment["author"]["username"]


def test_a_member_comments_under_their_own_name_not_the_admins(setup):
    admin_quota = setup.sim.quota_used(ADMIN.id)
    status, action = setup.request()
    assert status == 202 and action["status"] == "pending"
    requested, job = setup.run()
    assert setup.member_token not in json.dumps([requested.body, job.body])  # sealed
    assert setup.sim.quota_used(ADMIN.id) == admin_quota  # the app token was never used
    assert setup.sim.quota_used(MEMBER.id) == 1  # one POST, with the member's own token
    [comment] = setup.comments()
    assert author(setup.provider, comment) == MEMBER.login  # attributed to the member
    assert comment["body"] == f"Looks good to me\n\n<!-- keyway-action:{action['id']} -->"
    status, done = setup.status(action["id"])
    assert status == 200 and done["status"] == "done"
    assert done["provider_comment_id"] == str(comment["id"]) and done["url"].startswith("http")
    token = setup.stack.token(TENANT, "member-1", "member")
    shown = setup.stack.call("GET", f"/api/v1/comments/{quote(done['comment'], safe='')}",
                             token)
    assert shown.status_code == 200
    assert json.loads(shown.get_data())["author"]["login"] == MEMBER.login


def test_a_comment_on_an_issue_lands_on_the_issue(setup):
    number = 2 if setup.provider == "github" else 1  # GitHub numbers PRs and issues together
    status, action = setup.request(number=number, parent_kind="issue")
    assert status == 202
    setup.run()
    assert len(setup.comments(number, "issue")) == 1
    assert setup.status(action["id"])[1]["status"] == "done"


@pytest.mark.parametrize("setup", ["gitlab"], indirect=True)
def test_a_gitlab_note_with_a_read_api_token_fails_as_insufficient_scope(setup):
    setup.link("member-1", MEMBER, scopes=("read_api",))  # consented to reads only
    _, action = setup.request()
    setup.run()
    _, failed = setup.status(action["id"])
    assert (failed["status"], failed["reason"]) == ("failed", "insufficient_scope")
    assert setup.comments() == []
    assert [r.status for r in setup.sim.requests_log if r.method == "POST"] == [403]


def test_a_user_without_a_linked_identity_gets_409_with_where_to_link(github):
    status, problem = github.request(user="member-2")
    assert status == 409 and problem["code"] == "action.identity_required"
    assert problem["link_url"] == "/api/v1/identities"
    assert problem["link_body"] == {"provider": "github"}
    assert github.pull("action-requests-github") == []
    assert github.ports.business.query("actions") == []


def test_another_tenants_action_connection_and_repository_answer_404(github):
    _, action = github.request(action_id="shared-key-1")
    theirs, missing = (github.status(i, tenant=OTHER) for i in (action["id"], "no-such-1"))
    assert theirs == missing and theirs[0] == 404  # indistinguishable from a missing one
    status, _ = github.request(tenant=OTHER, user="member-1")  # their conn-1 is not ours
    assert status == 404


def test_the_same_action_id_again_returns_the_action_without_publishing_again(github):
    status, first = github.request(action_id="retry-1")
    status_again, again = github.request(action_id="retry-1")
    assert (status, status_again) == (202, 200) and again["id"] == first["id"]
    assert len(github.pull("action-requests-github")) == 1
    github.link("member-2", Account("hubot", 888, "Hubot"))
    assert github.request(user="member-2", action_id="retry-1")[0] == 409
    assert github.request(action_id="retry-1", body="something else")[0] == 409


def test_a_job_delivered_three_times_leaves_exactly_one_comment(setup):
    _, action = setup.request()
    _, job = setup.run()
    for _ in range(2):  # the same job twice more
        setup.deliver(f"action-jobs-{setup.provider}", job)
    assert len(setup.comments()) == 1
    assert setup.status(action["id"])[1]["status"] == "done"


def _lose_the_acknowledgement(setup, action_id: str) -> dict:
    """The provider call happened; the result write did not; the attempt's lease lapsed."""
    doc = setup.ports.business.get("actions", doc_id(TENANT, action_id))
    long_ago = isoformat(datetime.now(UTC) - timedelta(minutes=3))
    crashed = {**doc, "status": "pending", "provider_comment_id": None, "url": None,
               "comment": None, "finished_at": None,
               "attempt": {**doc["attempt"], "lease_until": long_ago}}
    setup.ports.business.put("actions", doc_id(TENANT, action_id), crashed)
    return doc


def test_a_lost_acknowledgement_after_the_post_leaves_exactly_one_comment(setup):
    _, action = setup.request()
    requested, job = setup.run()
    before = _lose_the_acknowledgement(setup, action["id"])
    setup.deliver(f"action-jobs-{setup.provider}", job)  # its envelope was opened: acked
    assert setup.status(action["id"])[1]["last_error"] == "envelope.replayed"
    [again] = setup.pull(f"action-requests-{setup.provider}")  # act-P asks for a new envelope
    assert again.sender == f"act-{setup.provider}" and again.body["user"] == "member-1"
    assert {k: again.body[k] for k in ("tenant", "action_id", "connection", "action")} == {
        k: requested.body[k] for k in ("tenant", "action_id", "connection", "action")}
    setup.deliver(f"action-requests-{setup.provider}", again)  # the vault re-seals
    [fresh] = setup.pull(f"action-jobs-{setup.provider}")
    setup.sim.clear_log()
    setup.deliver(f"action-jobs-{setup.provider}", fresh)
    assert len(setup.comments()) == 1
    assert [r.method for r in setup.sim.requests_log][:1] == ["GET"]  # found by its marker
    assert all(r.method == "GET" for r in setup.sim.requests_log)
    _, done = setup.status(action["id"])
    assert done["status"] == "done" and done["last_error"] is None
    assert done["provider_comment_id"] == before["provider_comment_id"]


def test_a_stuck_action_is_finished_by_the_clients_retry_without_a_second_comment(github):
    _, action = github.request(action_id="stuck-1")
    github.run()
    _lose_the_acknowledgement(github, "stuck-1")
    doc = github.ports.business.get("actions", doc_id(TENANT, "stuck-1"))
    github.ports.business.put("actions", doc_id(TENANT, "stuck-1"), {
        **doc, "published_at": isoformat(datetime.now(UTC) - timedelta(hours=1))})
    status, _ = github.request(action_id="stuck-1")  # the client retries its key
    assert status == 200
    github.run()
    assert len(github.comments()) == 1
    assert github.status("stuck-1")[1]["status"] == "done"


def test_a_provider_outage_is_retryable_and_the_retry_posts_once(github):
    _, action = github.request(action_id="outage-1")
    github.sim.fail_next(502, path_prefix="/api/v3/repos/")
    with pytest.raises(ProviderUnavailable):  # raised: Pub/Sub would redeliver
        github.run()
    _, pending = github.status("outage-1")
    assert pending["status"] == "pending" and pending["last_error"] == "provider.unavailable"
    doc = github.ports.business.get("actions", doc_id(TENANT, "outage-1"))
    assert doc["attempt"]["lease_until"] is None  # released at once
    github.ports.business.put("actions", doc_id(TENANT, "outage-1"), {
        **doc, "published_at": isoformat(datetime.now(UTC) - timedelta(hours=1))})
    assert github.request(action_id="outage-1")[0] == 200  # the client retries its key
    github.run()
    assert len(github.comments()) == 1
    assert github.status(action["id"])[1]["status"] == "done"


def test_a_retryable_failure_finishes_on_redelivery_without_the_clients_help(setup):
    """Pub/Sub redelivers the raised job after its backoff; its envelope is spent, so act-P
    asks the vault for a fresh one and that job posts exactly once."""
    _, action = setup.request()
    prefix = "/api/v3/" if setup.provider == "github" else "/api/v4/projects/"
    setup.sim.fail_next(502, path_prefix=prefix)
    with pytest.raises(ProviderUnavailable):
        setup.run()
    assert setup.comments() == []
    setup.deliver(f"action-jobs-{setup.provider}", setup.last_job)  # the redelivery
    [again] = setup.pull(f"action-requests-{setup.provider}")
    setup.deliver(f"action-requests-{setup.provider}", again)
    [fresh] = setup.pull(f"action-jobs-{setup.provider}")
    setup.deliver(f"action-jobs-{setup.provider}", fresh)
    assert len(setup.comments()) == 1
    _, done = setup.status(action["id"])
    assert done["status"] == "done" and done["last_error"] is None


def test_fresh_envelopes_are_bounded_then_the_action_fails(github):
    _, action = github.request(action_id="bounded-1")
    _, job = github.run()
    _lose_the_acknowledgement(github, "bounded-1")
    for _ in range(MAX_RESEALS):  # each spent-envelope redelivery asks for a fresh one
        github.deliver("action-jobs-github", job)
        assert len(github.pull("action-requests-github")) == 1
    github.deliver("action-jobs-github", job)
    assert github.pull("action-requests-github") == []
    _, failed = github.status("bounded-1")
    assert failed["status"] == "failed" and failed["reason"] == "retries_exhausted"


def test_act_may_ask_only_its_own_vault_for_an_envelope():
    policy.check_publish("act-github", "action-requests-github", "action.requested")
    for topic, type_ in [("action-requests-gitlab", "action.requested"),
                         ("action-jobs-github", "action.job"),
                         ("sync-requests-github", "sync.requested")]:
        with pytest.raises(PolicyViolation):
            policy.check_publish("act-github", topic, type_)


def test_a_missing_thread_fails_the_action_permanently(github):
    _, action = github.request(number=999)
    github.run()
    _, failed = github.status(action["id"])
    assert failed["status"] == "failed" and failed["reason"] == "target_not_found"


def test_an_expired_envelope_fails_the_action_instead_of_posting_late(github):
    _, action = github.request()
    [requested] = github.pull("action-requests-github")
    claims = new_claims("vault-github", "act-github", "action", "conn-1", "member-1",
                        datetime.now(UTC) - timedelta(minutes=10), 300)
    key = ChannelKeys(github.ports.secrets).key("vault-github", "act-github")
    personal = github.sim.oauth.mint(account=MEMBER).access_token
    envelope = seal(key, claims, personal.encode())
    github.deliver("action-jobs-github", messages.Inbound(
        "action-jobs-github", "action.job", 1, "vault-github",
        {**{k: requested.body[k] for k in ("tenant", "action_id", "connection", "action")},
         "envelope": envelope}, "m-1"))
    assert github.comments() == []
    _, failed = github.status(action["id"])
    assert failed["status"] == "failed" and failed["reason"] == "expired_envelope"


def test_a_job_for_another_users_action_is_refused(github):
    github.link("member-2", Account("hubot", 888, "Hubot"))
    _, action = github.request()
    [requested] = github.pull("action-requests-github")
    forged = {**requested.body, "user": "member-2"}  # asks for member-2's token
    github.deliver("action-requests-github", messages.Inbound(
        "action-requests-github", "action.requested", 1, "api", forged, "m-2"))
    assert github.pull("action-jobs-github") == []  # the vault refuses: not member-2's action
    assert github.comments() == []
    assert github.status(action["id"])[1]["status"] == "pending"


# ---- targets and identities: a personal token only goes where it was issued ---------------
def test_a_repository_of_another_connection_is_not_a_target(github):
    github.ports.business.put("connections", "conn-2", {
        "tenant": TENANT, "provider": "github", "kind": "app", "status": "active",
        "api_base": github.sim.api_url, "created_by": "admin-1"})
    status, problem = github.request(connection="conn-2")  # conn-1's repository
    assert status == 404 and problem["code"] == "not_found"
    assert github.pull("action-requests-github") == []


def test_an_identity_from_another_host_cannot_act_on_this_connection(github):
    identity_id = f"github:{TENANT}:member-1"
    identity = github.ports.business.get("identities", identity_id)
    github.ports.business.put("identities", identity_id,
                              {**identity, "base_url": "https://ghe.example.com"})
    status, problem = github.request()
    assert status == 409 and problem["code"] == "action.identity_required"
    assert github.pull("action-requests-github") == []


def test_act_refuses_when_the_identity_moved_to_another_host_meanwhile(github):
    _, action = github.request()
    identity_id = f"github:{TENANT}:member-1"
    identity = github.ports.business.get("identities", identity_id)
    github.ports.business.put("identities", identity_id,
                              {**identity, "base_url": "https://ghe.example.com"})
    github.sim.clear_log()
    github.run()
    assert github.sim.requests_log == []  # the member's token was sent nowhere
    _, failed = github.status(action["id"])
    assert failed["status"] == "failed" and failed["reason"] == "identity_mismatch"


def _job(github, requested, envelope, **changes) -> messages.Inbound:
    body = {**{k: requested.body[k] for k in ("tenant", "action_id", "connection", "action")},
            "envelope": envelope, **changes}
    return messages.Inbound("action-jobs-github", "action.job", 1, "vault-github", body, "m-9")


def test_act_refuses_a_job_whose_action_differs_from_the_recorded_one(github):
    _, action = github.request()
    [requested] = github.pull("action-requests-github")
    github.deliver("action-requests-github", requested)
    [job] = github.pull("action-jobs-github")
    tampered = {**requested.body["action"], "body": "something the member never wrote"}
    github.sim.clear_log()
    github.deliver("action-jobs-github", _job(github, requested, job.body["envelope"],
                                              action=tampered))
    assert github.sim.requests_log == [] and github.comments() == []
    assert github.status(action["id"])[1]["status"] == "pending"


def test_act_refuses_an_envelope_sealed_for_another_user(github):
    github.link("member-2", Account("hubot", 888, "Hubot"))
    _, action = github.request()
    [requested] = github.pull("action-requests-github")
    claims = new_claims("vault-github", "act-github", "action", "conn-1", "member-2",
                        datetime.now(UTC), 300)
    key = ChannelKeys(github.ports.secrets).key("vault-github", "act-github")
    others = github.sim.oauth.mint(account=Account("hubot", 888, "Hubot")).access_token
    github.sim.clear_log()
    github.deliver("action-jobs-github",
                   _job(github, requested, seal(key, claims, others.encode())))
    assert github.sim.requests_log == [] and github.comments() == []
    assert github.status(action["id"])[1]["status"] == "pending"


@pytest.fixture
def oauth_app(local_stack, leak_guard):
    """GitHub with OAuth App tokens (``gho_``), whose classic scopes GitHub enforces."""
    sim = GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track).start()
    yield Setup(local_stack, sim, "github")
    sim.stop()


def test_a_personal_token_without_public_repo_fails_the_comment_as_insufficient_scope(oauth_app):
    narrow = oauth_app.sim.oauth.mint(account=MEMBER, scopes=("read:user",))
    oauth_app.service.store_personal_token(TENANT, "member-1", oauth_app._tokens(narrow))
    stored = [(s.id, s.data) for s in oauth_app.ports.business.query("comments")]
    _, action = oauth_app.request()
    oauth_app.run()
    _, failed = oauth_app.status(action["id"])
    assert (failed["status"], failed["reason"]) == ("failed", "insufficient_scope")
    refused = [r for r in oauth_app.sim.requests_log if r.method == "POST"]
    assert [r.status for r in refused] == [403]  # GitHub was asked once and said no
    assert oauth_app.comments() == []
    assert [(s.id, s.data) for s in oauth_app.ports.business.query("comments")] == stored
    kept = oauth_app.ports.vault.get("personal_tokens", f"github:{TENANT}:member-1")
    assert kept is not None and kept.get("status", "active") == "active"  # no reauth asked


@pytest.mark.parametrize("status", ["disconnecting", "disconnected", "needs_reauth"])
def test_a_connection_that_cannot_act_refuses_new_actions(github, status):
    record = github.ports.business.get("connections", github.connection)
    github.ports.business.put("connections", github.connection, {**record, "status": status})
    code, problem = github.request()
    assert code == 409 and problem["code"] == "action.connection_unavailable"
    assert status in problem["detail"]
    assert github.pull("action-requests-github") == []
    assert github.ports.business.query("actions") == []


def test_an_action_pending_when_its_connection_is_disconnected_posts_nothing(github):
    _, action = github.request()
    record = github.ports.business.get("connections", github.connection)
    github.ports.business.put("connections", github.connection,
                              {**record, "status": "disconnected"})
    [requested] = github.pull("action-requests-github")
    github.deliver("action-requests-github", requested)
    assert github.pull("action-jobs-github") == []  # no token released
    _, failed = github.status(action["id"])
    assert (failed["status"], failed["reason"]) == ("failed", "connection_disconnected")
    assert github.comments() == []


def test_an_identity_that_needs_linking_again_gets_409_with_where_to_link(github):
    key = ids.identity_id("github", TENANT, "member-1")
    identity = github.ports.business.get("identities", key)
    github.ports.business.put("identities", key, {**identity, "status": "needs_reauth",
                                                  "status_reason": "vault.needs_reauth"})
    code, problem = github.request()
    assert code == 409 and problem["code"] == "action.identity_needs_reauth"
    assert problem["link_url"] == "/api/v1/identities"
    assert github.ports.business.query("actions") == []


def test_an_action_nobody_will_finish_ends_failed_with_a_reason(github):
    """Its messages were dead-lettered: the scheduler's sweep ends it once it is older than
    every retry — ``abandoned`` when nothing was attempted, ``outcome_unknown`` when an
    attempt never reported back; a live attempt lease is left alone."""
    from datetime import timedelta

    from shared.actions.model import doc_id
    from shared.scheduler import abandoned

    store = github.ports.business
    ids_ = [github.request(action_id=f"stuck-{n}")[1]["id"] for n in range(3)]
    later = github.ports.clock.now() + abandoned.DEADLINE + timedelta(minutes=1)
    tried = store.get("actions", doc_id(TENANT, ids_[1]))
    store.put("actions", doc_id(TENANT, ids_[1]), {**tried, "attempt": {
        "started_at": "2026-01-01T00:00:00.000000Z", "lease_until": "2026-01-01T00:02:00Z"}})
    busy = store.get("actions", doc_id(TENANT, ids_[2]))
    store.put("actions", doc_id(TENANT, ids_[2]), {**busy, "attempt": {
        "started_at": isoformat(later), "lease_until": isoformat(later + timedelta(minutes=2))}})
    assert abandoned.sweep(github.ports, github.ports.clock.now()) == 0  # too young
    assert abandoned.sweep(github.ports, later) == 2
    reasons = [(github.status(i)[1]["status"], github.status(i)[1]["reason"]) for i in ids_]
    assert reasons == [("failed", "abandoned"), ("failed", "outcome_unknown"), ("pending", None)]
    assert abandoned.sweep(github.ports, later) == 0  # idempotent
