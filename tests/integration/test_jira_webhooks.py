"""Jira webhooks through the real entry points: every documented event signed with
``X-Hub-Signature: sha256=…`` is acknowledged, published once (deduped on
``X-Atlassian-Webhook-Identifier``) and ingested into the sync's records; a dynamic webhook's
delivery (a JWT under the OAuth client secret) reaches only the connection that registered
it; every rejection answers problem+json with one stable key and stores nothing; events of
unknown sites or projects are dropped with ``ingest.jira.unknown_account``."""

from __future__ import annotations

import json
import logging
import secrets
import time

import jwt
import pytest

from shared.providers import registry
from shared.records import jira as jira_records
from shared.records.model import Context, record_id
from shared.webhooks import hooks as registrations
from tests.integration.test_webhooks import (
    FIXTURES,
    Hooks,
    LazyBody,
    github_signature,
    webhook_keys,
)

SITE_URL, CLOUD = "https://your-domain.atlassian.net", "1324a887-45db-1bf4-1e99-ef0ff456d421"
ORDER = ["jira_issue_created", "jira_issue_updated", "comment_created", "comment_updated",
         "comment_deleted", "jira_issue_deleted"]


def body(name: str) -> bytes:
    return (FIXTURES / "jira" / "webhooks" / f"{name}.json").read_bytes()


class JiraHooks(Hooks):
    def __init__(self, stack) -> None:
        super().__init__(stack)
        self.jira = stack.leak_guard.track(self.ports.secrets.access("jira-webhook-secret"))
        self.client_secret = self.track(secrets.token_urlsafe(48))
        self.ports.secrets.add_version("jira-client-secret", self.client_secret.encode())

    def app_token(self, secret: str | None = None, algorithm: str = "HS256") -> str:
        """What Jira sends with a dynamic webhook of the OAuth app: an HS256 JWT."""
        now = int(time.time())
        return self.track(jwt.encode({"iat": now, "exp": now + 180},
                                     secret or self.client_secret, algorithm=algorithm))

    def app_post(self, raw: bytes, token: str, *, delivery: str = "d-1"):
        return self.post("/webhook-jira/", raw, {
            "Authorization": f"Bearer {token}", "X-Atlassian-Webhook-Identifier": delivery,
            "Content-Type": "application/json"})

    def jira_post(self, raw: bytes, *, delivery: str = "d-1", secret: bytes | None = None,
                  path: str = "/webhook-jira/", **extra):
        signature = self.track(github_signature(secret or self.jira, raw))
        headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery,
                   "Content-Type": "application/json", **extra}
        return self.post(path, raw, {k: v for k, v in headers.items() if v is not None})

    def record(self, kind: str, key: str) -> dict | None:
        return self.ports.business.get(kind, record_id("acme", "jira", kind, key))


def connect(ports, connection: str, tenant: str, cloud: str, url: str) -> None:
    ports.business.put("connections", connection, {
        "tenant": tenant, "provider": "jira", "kind": "app", "status": "active",
        "site": {"id": cloud, "url": url, "name": "x"}})
    ctx = Context(tenant, "jira", connection, observed_at="2019-01-01T00:00:00.000000Z",
                  site=cloud)
    project = jira_records.repository({"id": "10000", "key": "ED", "name": "Edison Project"},
                                      ctx)
    ports.business.put("repositories", project["id"], project)


@pytest.fixture
def hooks(local_stack) -> JiraHooks:
    connect(local_stack.ports, "conn-jira", "acme", CLOUD, SITE_URL)
    # another tenant's site has a project with the same id: it must never be touched
    connect(local_stack.ports, "conn-other", "globex", "9f00aa00-0000-4000-8000-000000000001",
            "https://globex.atlassian.net")
    return JiraHooks(local_stack)


ISSUE = f"{CLOUD}:10000#24"
COMMENT = f"{CLOUD}:10100"


def test_every_documented_jira_event_is_acknowledged_and_ingested_in_order(hooks):
    for n, name in enumerate(ORDER[:4]):
        response = hooks.jira_post(body(name), delivery=f"d-{n}")
        assert (response.status_code, response.json) == (202, {"status": "accepted"}), name
    assert hooks.ingest("jira") == 4
    issue = hooks.record("issues", ISSUE)
    assert (issue["title"], issue["state"]) == ("Login page times out on slow networks",
                                                "closed")
    assert issue["assignees"] == [{"login": "Emma Richards",
                                   "external_id": "5b10ac8d82e05b22cc7d4ef5"}]
    assert {s.data["name"] for s in hooks.ports.business.query("labels")} == {"bugfix",
                                                                             "release-2"}
    comment = hooks.record("comments", COMMENT)
    assert comment["body"].endswith("and on hotel Wi-Fi.")
    assert comment["parent"] == record_id("acme", "jira", "issues", ISSUE)
    for n, name in enumerate(ORDER[4:], start=4):
        assert hooks.jira_post(body(name), delivery=f"d-{n}").status_code == 202
    assert hooks.ingest("jira") == 2
    assert hooks.record("comments", COMMENT)["deleted"] is True
    assert hooks.record("issues", ISSUE)["deleted"] is True
    others = [s for s in hooks.ports.business.query("issues") if s.data["tenant"] == "globex"]
    assert others == []  # the same project id on another site was not touched


def test_an_older_event_and_a_redelivery_leave_the_records_unchanged(hooks, caplog):
    hooks.jira_post(body("jira_issue_updated"), delivery="new")
    hooks.ingest("jira")
    before = hooks.record("issues", ISSUE)
    hooks.jira_post(body("jira_issue_created"), delivery="old")  # older, arriving late
    with caplog.at_level(logging.INFO):
        again = hooks.jira_post(body("jira_issue_updated"), delivery="new")  # Jira retries
    assert again.json == {"status": "duplicate"}
    assert "webhook.jira.duplicate" in webhook_keys(caplog)
    assert hooks.ingest("jira") == 1
    assert hooks.record("issues", ISSUE) == before


def test_events_of_an_unknown_site_or_project_are_dropped_with_a_stable_key(hooks, caplog):
    event = json.loads(body("jira_issue_created"))
    foreign = json.dumps(event).replace("your-domain.atlassian.net", "stranger.atlassian.net")
    unknown_project = json.loads(body("jira_issue_created"))
    unknown_project["issue"]["fields"]["project"]["id"] = "10999"
    hooks.jira_post(foreign.encode(), delivery="a")
    hooks.jira_post(json.dumps(unknown_project).encode(), delivery="b")
    with caplog.at_level(logging.INFO):
        assert hooks.ingest("jira") == 2
    keys = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest.")]
    assert keys.count("ingest.jira.unknown_account") == 2
    assert hooks.ports.business.query("issues") == []


def test_a_per_connection_hook_reaches_only_its_own_site(hooks):
    own = hooks.track(b"per-connection-jira-secret")
    hooks.ports.secrets.add_version("webhook-secret-conn-other", own)
    response = hooks.jira_post(body("jira_issue_created"), secret=own,
                               path="/webhook-jira/c/conn-other")
    assert response.status_code == 202  # signed right, but the payload is another site's
    hooks.ingest("jira")
    assert hooks.ports.business.query("issues") == []


def test_an_unhandled_event_is_acknowledged_and_ignored(hooks, caplog):
    raw = json.dumps({"webhookEvent": "worklog_created", "timestamp": 1}).encode()
    assert hooks.jira_post(raw).status_code == 202
    with caplog.at_level(logging.INFO):
        hooks.ingest("jira")
    assert "ingest.jira.ignored_event" in [r.getMessage() for r in caplog.records]


def registered(ports, connection: str, tenant: str, ids: list[str]) -> None:
    registrations.save(ports, {"tenant": tenant, "provider": "jira", "connection": connection,
                               "repository": registrations.SITE, "external_id": CLOUD},
                       status="active", hook_ids=ids)


def test_a_dynamic_webhooks_delivery_reaches_only_the_connection_that_registered_it(hooks):
    connect(hooks.ports, "conn-same-site", "initech", CLOUD, SITE_URL)  # same site, project
    event = json.loads(body("jira_issue_created"))
    (matched,) = event["matchedWebhookIds"]
    registered(hooks.ports, "conn-jira", "acme", [str(matched)])
    registered(hooks.ports, "conn-same-site", "initech", ["77"])
    response = hooks.app_post(json.dumps(event).encode(), hooks.app_token())
    assert (response.status_code, response.json) == (202, {"status": "accepted"})
    assert hooks.ingest("jira") == 1
    tenants = {s.data["tenant"] for s in hooks.ports.business.query("issues")}
    assert tenants == {"acme"}  # not initech, although its site and project match


def test_a_dynamic_delivery_that_no_registration_claims_is_dropped(hooks, caplog):
    event = json.loads(body("jira_issue_created"))
    event["matchedWebhookIds"] = [424242]
    hooks.app_post(json.dumps(event).encode(), hooks.app_token())
    with caplog.at_level(logging.INFO):
        hooks.ingest("jira")
    assert "ingest.jira.unknown_account" in [r.getMessage() for r in caplog.records]
    assert hooks.ports.business.query("issues") == []


# ---- rejections ------------------------------------------------------------------------------
CREATED = body("jira_issue_created")


REJECTIONS = {
    "no signature": (lambda h: h.jira_post(CREATED, **{"X-Hub-Signature": None}), 401,
                     "webhook.jira.missing_signature"),
    "wrong signature": (lambda h: h.post("/webhook-jira/", CREATED, {
        "X-Hub-Signature": "sha256=" + "0" * 64, "X-Atlassian-Webhook-Identifier": "d"}), 401,
        "webhook.jira.invalid_signature"),
    "signature over another body": (lambda h: h.post("/webhook-jira/", CREATED, {
        "X-Hub-Signature": h.track(github_signature(h.jira, CREATED + b" ")),
        "X-Atlassian-Webhook-Identifier": "d"}), 401, "webhook.jira.invalid_signature"),
    "GitHub's header name instead of Jira's": (lambda h: h.jira_post(CREATED, **{
        "X-Hub-Signature": None,
        "X-Hub-Signature-256": h.track(github_signature(h.jira, CREATED))}), 401,
        "webhook.jira.missing_signature"),
    "a stranger's secret": (lambda h: h.jira_post(CREATED, secret=b"not-the-jira-secret"),
                            401, "webhook.jira.invalid_signature"),
    "valid signature over invalid JSON": (lambda h: h.jira_post(b'{"webhookEvent": "ji'), 400,
                                          "webhook.jira.invalid_json"),
    "a JWT signed by another app": (lambda h: h.app_post(CREATED, h.app_token(
        h.track(secrets.token_urlsafe(48)))), 401, "webhook.jira.invalid_signature"),
    "a JWT under the right secret but HS512": (lambda h: h.app_post(CREATED, h.app_token(
        algorithm="HS512")), 401, "webhook.jira.invalid_signature"),
    "an unsigned alg none JWT": (lambda h: h.app_post(CREATED, jwt.encode(
        {"iat": int(time.time()), "exp": int(time.time()) + 180}, None, algorithm="none")),
        401, "webhook.jira.invalid_signature"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_every_jira_rejection_logs_one_stable_key_and_stores_nothing(hooks, caplog, case):
    send, status, key = REJECTIONS[case]
    with caplog.at_level(logging.INFO):
        response = send(hooks)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json["code"] == key
    assert webhook_keys(caplog) == [key]
    assert hooks.deliveries() == [] and hooks.published("jira") == []


def test_during_a_rotation_both_verify_and_after_it_the_old_secret_does_not(hooks, caplog):
    old, new = hooks.jira, hooks.track(b"rotated-jira-secret-2")
    hooks.ports.secrets.add_version("jira-webhook-secret-previous", old)
    hooks.ports.secrets.add_version("jira-webhook-secret", new)
    assert hooks.jira_post(CREATED, delivery="during-old", secret=old).status_code == 202
    assert hooks.jira_post(CREATED, delivery="during-new", secret=new).status_code == 202


def test_a_secret_rotated_out_no_longer_verifies(local_stack, caplog):
    connect(local_stack.ports, "conn-jira", "acme", CLOUD, SITE_URL)
    hooks = JiraHooks(local_stack)
    old, new = hooks.jira, hooks.track(b"rotated-jira-secret-2")
    hooks.ports.secrets.add_version("jira-webhook-secret", new)  # rotated, window closed:
    hooks.ports.secrets.add_version("jira-webhook-secret-previous", new)  # old retired
    with caplog.at_level(logging.INFO):
        refused = hooks.jira_post(CREATED, delivery="after", secret=old)
    assert refused.status_code == 401
    assert webhook_keys(caplog) == ["webhook.jira.invalid_signature"]
    assert hooks.deliveries() == [] and hooks.published("jira") == []
    assert hooks.jira_post(CREATED, delivery="after", secret=new).status_code == 202


def test_a_replayed_delivery_id_is_acknowledged_but_published_once(hooks):
    first = hooks.jira_post(CREATED, delivery="a1b2c3")
    again = hooks.jira_post(CREATED, delivery="a1b2c3")
    assert (first.json, again.json) == ({"status": "accepted"}, {"status": "duplicate"})
    assert len(hooks.published("jira")) == 1
    assert [d.id for d in hooks.deliveries()] == ["jira:a1b2c3"]


def test_an_oversized_jira_body_is_refused_unread(hooks, caplog):
    cap = registry.get("jira").webhook.max_body_bytes
    declared = LazyBody(cap + 1)
    with caplog.at_level(logging.INFO):
        response = hooks.post("/webhook-jira/", None, {"X-Hub-Signature": "sha256=00"},
                              input_stream=declared)
    assert (response.status_code, response.json["code"]) == (413, "webhook.jira.too_large")
    assert declared.read_bytes == 0
    assert webhook_keys(caplog) == ["webhook.jira.too_large"]
    assert hooks.deliveries() == [] and hooks.published("jira") == []
