"""The Bitbucket simulator answers every endpoint keyway calls the way Bitbucket Cloud's
published REST 2.0 description (``../shared/specs/bitbucket/openapi.yml``) says: a documented
status and a body that validates against the operation's schema; paged lists carry the
``next`` URL keyway follows.

That description predates ``GET /user/workspaces`` (see ``SOURCES.md``), so its answer is
checked against :data:`WORKSPACE_ACCESS_PAGE`, written from Atlassian's page "List workspaces
for the current user" (Bitbucket Cloud REST API, Workspaces) and the description's own
``workspace`` schema.
"""

from __future__ import annotations

import jsonschema_rs
import pytest

from keyway.simulators import BitbucketSimulator
from shared.actions.targets import payload
from shared.fetch.bitbucket.plan import PR_STATES
from shared.providers import registry
from tests.contract import _described
from tests.contract._simulated import (
    Case,
    assert_conforms,
    client,
    conforms,
    plan_params,
    purpose_of,
    without,
)

OWNER = "acme"
REPO = "/repositories/{workspace}/{repo_slug}"
PAGE = {"pagelen": "1"}  # small pages, so lists carry `next`


def _planned(op: str) -> dict[str, str]:
    return {**plan_params("bitbucket", op), **PAGE}


def _repo(seeded):
    return {"workspace": OWNER, "repo_slug": seeded["repo"]}


CASES = [
    Case("GET /user"),
    Case("GET /repositories/{workspace}", path=lambda s: {"workspace": OWNER},
         query=_planned("GET /repositories/{workspace}")),
    Case(f"GET {REPO}", path=_repo),
    Case(f"GET {REPO}/pullrequests", path=_repo, query=_planned(f"GET {REPO}/pullrequests")),
    Case(f"GET {REPO}/pullrequests/{{pull_request_id}}",
         path=lambda s: {**_repo(s), "pull_request_id": s["pull"]}),
    Case(f"GET {REPO}/pullrequests/{{pull_request_id}}/comments",
         path=lambda s: {**_repo(s), "pull_request_id": s["pull"]},
         query=plan_params("bitbucket", f"GET {REPO}/pullrequests/{{pull_request_id}}/comments")),
    Case(f"POST {REPO}/pullrequests/{{pull_request_id}}/comments", token="personal",
         path=lambda s: {**_repo(s), "pull_request_id": s["pull"]},
         body=lambda s: payload("bitbucket", "Looks good", "act-contract-1")),
    Case(f"GET {REPO}/issues", path=_repo, query=_planned(f"GET {REPO}/issues")),
    Case(f"GET {REPO}/issues/{{issue_id}}", path=lambda s: {**_repo(s), "issue_id": s["issue"]}),
    Case(f"GET {REPO}/issues/{{issue_id}}/comments",
         path=lambda s: {**_repo(s), "issue_id": s["issue"]},
         query=plan_params("bitbucket", f"GET {REPO}/issues/{{issue_id}}/comments")),
    Case(f"POST {REPO}/issues/{{issue_id}}/comments", token="personal",
         path=lambda s: {**_repo(s), "issue_id": s["issue"]},
         body=lambda s: payload("bitbucket", "Noted", "act-contract-2")),
]
WORKSPACES = Case("GET /user/workspaces", query=_planned("GET /user/workspaces"))

NOT_APPLICABLE = {
    f"GET {REPO}/hooks": "keyway registers no Bitbucket webhooks (providers.json "
                         "webhook_registration is null); not simulated",
    f"POST {REPO}/hooks": "keyway registers no Bitbucket webhooks; not simulated",
    f"DELETE {REPO}/hooks/{{uid}}": "keyway registers no Bitbucket webhooks; not simulated",
}

_LINK = {"type": "object", "properties": {"href": {"type": "string", "format": "uri"}}}
WORKSPACE_ACCESS_PAGE = {
    "type": "object",
    "required": ["values", "pagelen"],
    "properties": {
        "pagelen": {"type": "integer"}, "page": {"type": "integer"},
        "size": {"type": "integer"}, "next": {"type": "string", "format": "uri"},
        "values": {"type": "array", "items": {
            "type": "object",
            "required": ["type", "workspace"],
            "properties": {
                "type": {"enum": ["workspace_access"]},
                "administrator": {"type": "boolean"},
                "workspace": {
                    "type": "object",
                    "required": ["type", "uuid", "slug"],
                    "properties": {
                        "type": {"enum": ["workspace_base", "workspace"]},
                        "uuid": {"type": "string", "pattern": "^\\{[0-9a-f-]{36}\\}$"},
                        "slug": {"type": "string"},
                        "links": {"type": "object", "additionalProperties": _LINK},
                    },
                },
            },
        }},
    },
}


@pytest.fixture(scope="module")
def description() -> _described.Description:
    return _described.bitbucket()


@pytest.fixture(scope="module")
def world():
    scopes = registry.get("bitbucket").oauth.scopes
    with BitbucketSimulator() as sim:
        sim.seed_activity(OWNER, repos=2, prs=4, issues=3, comments=6)
        tokens = {kind: sim.mint_token(scopes=tuple(scopes[kind])).access_token
                  for kind in ("app", "personal")}
        api = client("bitbucket", sim.api_url, tokens["app"])
        repo = api.get("GET /repositories/{workspace}", {"workspace": OWNER}).body["values"][0]
        seeded = {"repo": repo["slug"]}
        pulls = api.get(f"GET {REPO}/pullrequests", _repo(seeded), {"state": PR_STATES}).body
        issues = api.get(f"GET {REPO}/issues", _repo(seeded)).body
        seeded |= {"pull": str(pulls["values"][0]["id"]),
                   "issue": str(issues["values"][0]["id"])}
        yield sim, tokens, seeded


def _answer(world, case: Case):
    sim, tokens, seeded = world
    api = client("bitbucket", sim.api_url, tokens[case.token], purpose_of("bitbucket", case.op))
    return case.send(api, seeded)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_answer_matches_the_published_description(world, description, case: Case) -> None:
    assert_conforms(description, case.op, _answer(world, case))


def test_user_workspaces_match_the_documented_shape(world) -> None:
    answer = _answer(world, WORKSPACES)
    assert answer.status == 200
    problems = [e.message for e in jsonschema_rs.Draft4Validator(
        WORKSPACE_ACCESS_PAGE, validate_formats=True).iter_errors(answer.body)]
    assert not problems, problems


@pytest.mark.parametrize("case", [c for c in CASES if c.query.get("pagelen") == PAGE["pagelen"]],
                         ids=lambda c: c.op)
def test_paged_lists_carry_the_next_url_keyway_follows(world, case: Case) -> None:
    answer = _answer(world, case)
    assert answer.body["pagelen"] == 1
    assert answer.body.get("next") and answer.next_url == answer.body["next"]
    sim, tokens, seeded = world
    api = client("bitbucket", sim.api_url, tokens[case.token])
    following = api.get_next(answer.next_url, case.op)  # stays on the allowlisted template
    assert following.status == 200 and following.body["values"]


def test_a_missing_required_field_fails_validation(world, description) -> None:
    case = CASES[0]  # GET /user: "type" is the one property the account schema requires
    answer = _answer(world, case)
    broken = type(answer)(answer.status, without(answer.body, "type"), answer.etag,
                          answer.next_url, answer.not_modified, answer.headers)
    assert any("type" in p for p in conforms(description, case.op, broken))
