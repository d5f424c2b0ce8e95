"""The Jira simulator answers every endpoint keyway calls the way Jira Cloud's published
platform REST v3 description (``../shared/specs/jira/swagger-v3.v3.json``) says: a documented
status, a body that validates against the operation's schema, and the rate-limit headers keyway
reads (``X-RateLimit-Limit``/``-Remaining`` integers, ``X-RateLimit-Reset`` ISO 8601).

``GET /oauth/token/accessible-resources`` is Atlassian's OAuth 2.0 (3LO) endpoint, not part of
the platform description: its answer is checked against :data:`ACCESSIBLE_RESOURCES`, written
from Atlassian's page "OAuth 2.0 (3LO) apps" (section "Get the cloudid for your site").
"""

from __future__ import annotations

from datetime import datetime

import jsonschema_rs
import pytest

from keyway.simulators import JiraSimulator
from shared.actions.targets import payload
from shared.fetch import reconcile_totals
from shared.fetch.jira.plan import issues_query
from shared.providers import registry
from tests.contract import _described
from tests.contract._simulated import (
    Case,
    assert_conforms,
    client,
    conforms,
    integer_header,
    plan_params,
    purpose_of,
)

ISSUE = "/rest/api/3/issue/{issueIdOrKey}/comment"


def _issue(seeded):
    return {"issueIdOrKey": seeded["issue"]}


def _ids(seeded):
    return {"webhookIds": [int(seeded["hook"])]}


def _webhook(seeded):
    events = registry.get("jira").webhook_registration.events
    return {"url": "https://keyway.example/webhook-jira/",
            "webhooks": [{"events": list(events), "jqlFilter": f"project = {seeded['project']}"}]}


CASES = [
    Case("GET /rest/api/3/myself"),
    Case("GET /rest/api/3/project/search",
         query={**plan_params("jira", "GET /rest/api/3/project/search"), "maxResults": "1"}),
    Case("GET /rest/api/3/search/jql", query=lambda s: {
        **plan_params("jira", "GET /rest/api/3/search/jql"), "maxResults": "2",
        **issues_query({"project": s["project"]}, None)}),
    Case("POST /rest/api/3/search/approximate-count",
         body=lambda s: reconcile_totals.QUERIES["jira"].body({"project": s["project"]})),
    Case(f"GET {ISSUE}", path=_issue, query=plan_params("jira", f"GET {ISSUE}")),
    Case(f"POST {ISSUE}", token="personal", path=_issue,
         body=lambda s: payload("jira", "Looks good", "act-contract-1")),
    Case("GET /rest/api/3/webhook"),
    Case("POST /rest/api/3/webhook", body=_webhook),
    Case("PUT /rest/api/3/webhook/refresh", body=_ids),
    Case("DELETE /rest/api/3/webhook", body=_ids),
    Case("GET /rest/api/3/webhook/failed", query={"maxResults": "1"}),
]
RESOURCES = Case("GET /oauth/token/accessible-resources")
NOT_APPLICABLE: dict[str, str] = {}

ACCESSIBLE_RESOURCES = {
    "type": "array",
    "items": {"type": "object", "required": ["id", "url", "name", "scopes", "avatarUrl"],
              "properties": {"id": {"type": "string"}, "url": {"type": "string", "format": "uri"},
                             "name": {"type": "string"}, "avatarUrl": {"type": "string"},
                             "scopes": {"type": "array", "items": {"type": "string"}}}},
}


@pytest.fixture(scope="module")
def description() -> _described.Description:
    return _described.jira()


@pytest.fixture(scope="module")
def world():
    spec = registry.get("jira")
    scopes = spec.oauth.scopes
    with JiraSimulator() as sim:
        project = sim.seed_activity("acme", repos=2, issues=6, comments=8)[0]
        tokens = {"app": sim.mint_token(scopes=(*scopes["app"],
                                                *spec.webhook_registration.scopes)).access_token,
                  "personal": sim.mint_token(scopes=tuple(scopes["personal"])).access_token}
        api = client("jira", sim.site_api_url, tokens["app"])
        issues = api.get("GET /rest/api/3/search/jql",
                         params={**issues_query({"project": str(project.id)}, None),
                                 "fields": "summary"}).body
        seeded = {"project": str(project.id), "issue": issues["issues"][0]["key"]}
        hook = api.post("POST /rest/api/3/webhook", {}, _webhook(seeded)).body
        seeded["hook"] = str(hook["webhookRegistrationResult"][0]["createdWebhookId"])
        sim.register_client("simulator", "jira-contract-signing-secret-32-bytes", [])
        sim.webhooks.drop_next(2)  # two failed deliveries for GET /webhook/failed; none sent
        for _ in range(2):
            sim.deliver("jira:issue_updated", seeded["issue"])
        yield sim, tokens, seeded


def _answer(world, case: Case, base: str | None = None):
    sim, tokens, seeded = world
    api = client("jira", base or sim.site_api_url, tokens[case.token], purpose_of("jira", case.op))
    return case.send(api, seeded)


def _check_rate_headers(headers) -> None:
    assert integer_header(headers, "X-RateLimit-Remaining") <= integer_header(
        headers, "X-RateLimit-Limit")
    reset = headers.get("X-RateLimit-Reset", "")
    assert datetime.fromisoformat(reset.replace("Z", "+00:00")).tzinfo, reset


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_answer_matches_the_published_description(world, description, case: Case) -> None:
    answer = _answer(world, case)
    assert_conforms(description, case.op, answer)
    _check_rate_headers(answer.headers)


def test_accessible_resources_match_the_documented_shape(world) -> None:
    sim, _, _ = world
    answer = _answer(world, RESOURCES, base=sim.url)
    assert answer.status == 200 and answer.body
    validator = jsonschema_rs.Draft4Validator(ACCESSIBLE_RESOURCES, validate_formats=True)
    assert not [e.message for e in validator.iter_errors(answer.body)]


def test_paged_answers_carry_what_keyway_pages_with(world) -> None:
    projects = _answer(world, CASES[1]).body
    assert projects["isLast"] is False and projects["nextPage"]
    issues = _answer(world, CASES[2]).body
    assert issues["nextPageToken"] and isinstance(issues["isLast"], bool)
    comments = _answer(world, CASES[4]).body
    assert {"startAt", "maxResults", "total"} <= set(comments)


def test_a_wrongly_typed_field_fails_validation(world, description) -> None:
    """The validator is not vacuous (Jira's schemas require little, so a type is broken)."""
    case = CASES[4]  # a comment page
    answer = _answer(world, case)
    assert not conforms(description, case.op, answer)
    broken = type(answer)(answer.status, {**answer.body, "total": "three"}, answer.etag,
                          answer.next_url, answer.not_modified, answer.headers)
    assert any("total" in p for p in conforms(description, case.op, broken))
