"""The GitLab simulator answers every endpoint keyway calls with the fields GitLab's REST v4
documentation lists (the hand-written schemas in :mod:`tests.contract.gitlab_schemas`; the rule
behind each check, with its documentation page, is in ``docs/PROVIDERS.md``): offset
pages carry ``X-Page``/``X-Per-Page``/``X-Next-Page``/``X-Total`` and a ``Link``, keyset pages
a ``Link`` with ``rel="next"``, every answer the ``RateLimit-*`` headers, every GET a weak
``ETag`` that answers 304 to ``If-None-Match``.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import jsonschema_rs
import pytest

from keyway.simulators import GitLabSimulator
from shared.actions.targets import payload
from shared.providers import registry
from shared.webhooks.hooks import PROFILES
from tests.contract import gitlab_schemas as schemas
from tests.contract._simulated import (
    ETAG,
    Case,
    client,
    integer_header,
    links,
    plan_params,
    purpose_of,
)

P = "/projects/{id}"
MR = P + "/merge_requests/{merge_request_iid}"
ISSUE = P + "/issues/{issue_iid}"
PAGE = {"per_page": "2"}


def _planned(op: str) -> dict[str, str]:
    return {**plan_params("gitlab", op), **PAGE}


def _project(seeded):
    return {"id": seeded["project"]}


def _mr(seeded):
    return {"id": seeded["project"], "merge_request_iid": seeded["mr"]}


def _issue(seeded):
    return {"id": seeded["project"], "issue_iid": seeded["issue"]}


def _hook(seeded):
    events = registry.get("gitlab").webhook_registration.events
    return PROFILES["gitlab"].body("https://keyway.example/webhook-gitlab/c/contract",
                                   "contract-secret", tuple(events))


CASES = [
    (Case("GET /user"), schemas.CURRENT_USER),
    (Case("GET /projects", query=_planned("GET /projects")), schemas.page(schemas.PROJECT)),
    (Case(f"GET {P}", path=_project), schemas.SINGLE_PROJECT),
    (Case(f"GET {P}/labels", path=_project, query=_planned(f"GET {P}/labels")),
     schemas.page(schemas.LABEL)),
    (Case(f"GET {P}/merge_requests", path=_project, query=_planned(f"GET {P}/merge_requests")),
     schemas.page(schemas.MERGE_REQUEST)),
    (Case(f"GET {MR}/notes", path=_mr, query=plan_params("gitlab", f"GET {MR}/notes")),
     schemas.page(schemas.NOTE)),
    (Case(f"POST {MR}/notes", token="personal", path=_mr,
         body=lambda s: payload("gitlab", "Looks good", "act-contract-1")), schemas.NOTE),
    (Case(f"GET {MR}/approvals", path=_mr, query=plan_params("gitlab", f"GET {MR}/approvals")),
     schemas.APPROVALS),
    (Case(f"GET {P}/issues", path=_project, query=_planned(f"GET {P}/issues")),
     schemas.page(schemas.ISSUE)),
    (Case(f"GET {ISSUE}/notes", path=_issue, query=plan_params("gitlab", f"GET {ISSUE}/notes")),
     schemas.page(schemas.NOTE)),
    (Case(f"POST {ISSUE}/notes", token="personal", path=_issue,
         body=lambda s: payload("gitlab", "Noted", "act-contract-2")), schemas.NOTE),
    (Case(f"GET {P}/hooks", path=_project), schemas.page(schemas.HOOK)),
    (Case(f"POST {P}/hooks", path=_project, body=_hook), schemas.HOOK),
    (Case(f"GET {P}/hooks/{{hook_id}}/events",
          path=lambda s: {"id": s["project"], "hook_id": s["logged_hook"]},
          query={"status": "client_failure,server_failure", **PAGE}),
     {**schemas.page(schemas.HOOK_EVENT), "minItems": 1}),
    (Case(f"DELETE {P}/hooks/{{hook_id}}",
         path=lambda s: {"id": s["project"], "hook_id": s["hook"]}), None),
]
SCHEMA = {case.op: schema for case, schema in CASES}
GETS = [c for c, _ in CASES if c.method == "GET"]

NOT_APPLICABLE = {
    "GET /users/{user_id}": "keyway never calls it (authors come embedded); not simulated",
    "GET /groups/{id}/projects": "keyway lists GET /projects?membership=true; not simulated",
    f"GET {MR}": "keyway never calls it (merge requests come from the list); not simulated",
    f"GET {MR}/discussions": "keyway reads notes, not discussions; not simulated",
    f"GET {ISSUE}": "keyway never calls it (issues come from the list); not simulated",
}


@pytest.fixture(scope="module")
def world():
    spec = registry.get("gitlab")
    with GitLabSimulator() as sim:
        project = sim.seed_activity("acme-group", repos=1, prs=5, issues=5, comments=12)[0]
        sim.seed("acme-group", projects=3)  # more projects than one page
        tokens = {"app": sim.mint_token(scopes=(*spec.oauth.scopes["app"],
                                                *spec.webhook_registration.scopes)).access_token,
                  "personal": sim.mint_token(scopes=tuple(spec.oauth.scopes["personal"]))
                  .access_token}
        api = client("gitlab", sim.api_url, tokens["app"])
        seeded = {"project": str(project["id"])}
        mrs = api.get(f"GET {P}/merge_requests", _project(seeded), {"state": "all"}).body
        issues = api.get(f"GET {P}/issues", _project(seeded), {"scope": "all"}).body
        seeded |= {"mr": str(mrs[0]["iid"]), "issue": str(issues[0]["iid"])}
        seeded["hook"] = str(api.post(f"POST {P}/hooks", _project(seeded),
                                      _hook(seeded)).body["id"])
        logged = {**_hook(seeded), "url": "https://keyway.example/webhook-gitlab/c/logged"}
        seeded["logged_hook"] = str(api.post(f"POST {P}/hooks", _project(seeded),
                                             logged).body["id"])  # never deleted here
        sim.drop_deliveries(next_n=8)  # failed deliveries in each hook's events: 2+ pages
        for _ in range(4):
            sim.deliver(int(seeded["project"]), {"object_kind": "issue", "project": {"id": 1},
                                                 "object_attributes": {"action": "open"}})
        yield sim, tokens, seeded


def _answer(world, case: Case):
    sim, tokens, seeded = world
    api = client("gitlab", sim.api_url, tokens[case.token], purpose_of("gitlab", case.op))
    return case.send(api, seeded)


def _errors(schema, body) -> list[str]:
    validator = jsonschema_rs.Draft4Validator(schema, validate_formats=True)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}"[:300]
            for e in validator.iter_errors(body)]


def _check_rate_headers(headers) -> None:
    limit = integer_header(headers, "RateLimit-Limit")
    assert integer_header(headers, "RateLimit-Remaining") <= limit
    assert integer_header(headers, "RateLimit-Reset") > 1_600_000_000  # epoch seconds
    assert parsedate_to_datetime(headers["RateLimit-ResetTime"])  # an HTTP-date


@pytest.mark.parametrize("case", [c for c, _ in CASES], ids=lambda c: c.op)
def test_answer_has_the_documented_fields(world, case: Case) -> None:
    answer = _answer(world, case)
    assert answer.status == {"GET": 200, "POST": 201, "DELETE": 204}[case.method]
    schema = SCHEMA[case.op]
    if schema is None:
        assert answer.body is None
    else:
        assert answer.body, f"{case.op}: an empty answer proves nothing"
        problems = _errors(schema, answer.body)
        assert not problems, problems[:15]
    _check_rate_headers(answer.headers)


@pytest.mark.parametrize("case", GETS, ids=lambda c: c.op)
def test_every_get_has_an_etag_and_answers_304_when_unchanged(world, case: Case) -> None:
    sim, tokens, seeded = world
    api = client("gitlab", sim.api_url, tokens[case.token], purpose_of("gitlab", case.op))
    first = case.send(api, seeded)
    assert first.etag and first.etag.startswith("W/") and ETAG.match(first.etag), first.etag
    again = api.get(case.op, case.path(seeded), case.params(seeded), etag=first.etag)
    assert again.status == 304 and again.not_modified
    _check_rate_headers(again.headers)


@pytest.mark.parametrize("case", [c for c in GETS if "per_page" in c.params({})],
                         ids=lambda c: c.op)
def test_offset_pages_carry_gitlabs_paging_headers(world, case: Case) -> None:
    answer = _answer(world, case)
    headers = answer.headers
    assert integer_header(headers, "X-Page") == 1 and integer_header(headers, "X-Per-Page") == 2
    assert integer_header(headers, "X-Next-Page") == 2
    assert integer_header(headers, "X-Total") > 2
    found = links(headers["Link"])
    assert answer.next_url == found["next"] and "page=2" in found["next"]


def test_keyset_pages_link_the_next_page(world) -> None:
    sim, tokens, _ = world
    api = client("gitlab", sim.api_url, tokens["app"])
    answer = api.get("GET /projects", {}, {"pagination": "keyset", "order_by": "id",
                                           "sort": "asc", "per_page": "1"})
    assert "X-Total" not in answer.headers  # keyset pages have no totals
    assert answer.next_url == links(answer.headers["Link"])["next"]
    assert api.get_next(answer.next_url, "GET /projects").body[0]["id"] > answer.body[0]["id"]


def test_a_missing_documented_field_fails_validation(world) -> None:
    case = next(c for c, _ in CASES if c.op.endswith("/merge_requests"))
    body = _answer(world, case).body
    assert not _errors(SCHEMA[case.op], body)
    del body[0]["source_branch"]
    body[1]["state"] = "open"  # GitLab says "opened"
    problems = _errors(SCHEMA[case.op], body)
    assert any("source_branch" in p for p in problems), problems
    assert any("open" in p for p in problems), problems
