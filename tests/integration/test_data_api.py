"""Browsing synced data through the api: filters, cursor pagination, tenant isolation."""

from __future__ import annotations

import json
from urllib.parse import quote

from shared.fetch import pending, status
from shared.fetch.plan import Parent
from shared.records import store as records
from shared.records.model import record_id

TENANT, OTHER = "tenant-a", "tenant-b"


def pr(tenant: str, n: int, state: str = "open", updated: str = "2026-01-01T00:00:00.000000Z"):
    return {"id": record_id(tenant, "github", "pull_requests", f"r1#{n}"), "kind": "pull_requests",
            "tenant": tenant, "provider": "github", "connection": f"conn-{tenant}",
            "external_id": str(1000 + n), "repository": f"{tenant}:repo", "url": f"https://x/{n}",
            "created_at": updated, "updated_at": updated, "deleted": False, "number": n,
            "title": f"PR {n}", "state": state}


def get(stack, path: str, token: str):
    response = stack.call("GET", path, token)
    return response.status_code, json.loads(response.get_data())


def test_pages_cover_every_record_once_and_only_the_callers_tenant(local_stack):
    for n in range(7):
        records.upsert(local_stack.ports.business, pr(TENANT, n))
        records.upsert(local_stack.ports.business, pr(OTHER, n))
    token = local_stack.token(TENANT, "u-1", "member")
    seen, cursor = [], None
    while True:
        path = "/api/v1/pull-requests?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, body = get(local_stack, path, token)
        assert status == 200
        seen += [item["number"] for item in body["items"]]
        assert all("tenant" not in item for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == list(range(7)) and len(seen) == 7


def test_filters_are_anded(local_stack):
    records.upsert(local_stack.ports.business, pr(TENANT, 1, "open"))
    records.upsert(local_stack.ports.business, pr(TENANT, 2, "merged",
                                                  "2026-03-01T00:00:00.000000Z"))
    token = local_stack.token(TENANT, "u-1", "member")
    _, merged = get(local_stack, "/api/v1/pull-requests?state=merged", token)
    assert [i["number"] for i in merged["items"]] == [2]
    _, recent = get(local_stack, "/api/v1/pull-requests?updated_since=2026-02-01T00:00:00Z",
                    token)
    assert [i["number"] for i in recent["items"]] == [2]


def test_another_tenants_record_answers_404_like_a_missing_one(local_stack):
    theirs = pr(OTHER, 5)
    records.upsert(local_stack.ports.business, theirs)
    token = local_stack.token(TENANT, "u-1", "member")
    mine = pr(TENANT, 6)
    records.upsert(local_stack.ports.business, mine)
    status_mine, body_mine = get(local_stack, f"/api/v1/pull-requests/{quote(mine['id'], safe='')}",
                                 token)
    assert status_mine == 200 and body_mine["number"] == 6
    status_theirs, body_theirs = get(local_stack,
                                     f"/api/v1/pull-requests/{quote(theirs['id'], safe='')}", token)
    status_missing, body_missing = get(local_stack, "/api/v1/pull-requests/nope", token)
    assert status_theirs == status_missing == 404
    assert body_theirs["title"] == body_missing["title"]


def test_bad_query_parameters_are_400_problems(local_stack):
    token = local_stack.token(TENANT, "u-1", "member")
    for query in ("limit=0", "limit=abc", "limit=201", "cursor=%%%", "updated_since=yesterday"):
        response = local_stack.call("GET", f"/api/v1/issues?{query}", token)
        assert response.status_code == 400, query
        assert response.mimetype == "application/problem+json"


def test_data_needs_the_data_read_scope(local_stack):
    token = local_stack.token(TENANT, "u-1", "member", scopes=["connections:read"])
    assert local_stack.call("GET", "/api/v1/issues", token).status_code == 403


def test_sync_status_of_another_tenants_connection_is_404(local_stack):
    local_stack.ports.business.put("connections", "conn-x", {"tenant": OTHER, "status": "active"})
    token = local_stack.token(TENANT, "u-1", "admin")
    assert local_stack.call("GET", "/api/v1/connections/conn-x/status", token).status_code == 404
    mine = local_stack.token(OTHER, "u-2", "admin")
    status, body = get(local_stack, "/api/v1/connections/conn-x/status", mine)
    assert status == 200 and body["sync"]["state"] == "never"


def test_sync_status_shows_what_the_provider_refused_and_never_reads_fully_healthy(local_stack):
    ports = local_stack.ports
    ports.business.put("connections", "conn-d", {"tenant": TENANT, "status": "active"})
    owner = status.begin(ports, TENANT, "conn-d")
    book = pending.PendingBook(ports.business, "conn-d", "round-1", "2026-01-02T03:04:05Z")
    book.settle(f"{TENANT}:repo", "reviews", [], [
        ("PR_1", Parent("pull_request", 1, {"pull_number": "1"}), "permission"),
        ("PR_2", Parent("pull_request", 2, {"pull_number": "2"}), "permission")])
    status.end(ports, "conn-d", owner, "done", stats={"requests": 3})
    token = local_stack.token(TENANT, "u-1", "admin")
    code, body = get(local_stack, "/api/v1/connections/conn-d/status", token)
    assert code == 200 and body["sync"]["state"] == "done"
    assert body["sync"]["degraded"] is True
    assert body["sync"]["missing"] == [{
        "child": "reviews", "reason": "reviews.unavailable: permission", "parents": 2,
        "repositories": 1, "first_seen": "2026-01-02T03:04:05Z"}]

    book.settle(f"{TENANT}:repo", "reviews", [Parent("pull_request", n, {}) for n in (1, 2)],
                [])  # a later sync read them
    status.end(ports, "conn-d", status.begin(ports, TENANT, "conn-d"), "done")
    _, healed = get(local_stack, "/api/v1/connections/conn-d/status", token)
    assert healed["sync"]["degraded"] is False and healed["sync"]["missing"] == []


def test_a_record_id_pasted_as_listed_reaches_its_record(local_stack):
    """Ids carry ``%2F``, ``%23`` and ``%3A`` (each part escaped): pasted into a path exactly
    as a list showed them, or encoded once more, they name the record; a decoded ``..%2F``
    never becomes a path separator."""
    tenant = "org:a"  # escaped to org%3Aa inside every id
    mine = {**pr(tenant, 7), "external_id": "1007"}
    mine["id"] = record_id(tenant, "github", "pull_requests", "acme/widgets#7")
    records.upsert(local_stack.ports.business, mine)
    token = local_stack.token(tenant, "u-1", "member")
    listed = get(local_stack, "/api/v1/pull-requests", token)[1]["items"]
    assert [i["id"] for i in listed] == [mine["id"]] and "%2F" in mine["id"]
    for path_id in (listed[0]["id"], quote(listed[0]["id"], safe="")):
        code, body = get(local_stack, f"/api/v1/pull-requests/{path_id}", token)
        assert code == 200 and body["number"] == 7, path_id
    for probe in ("..%2F..%2Fconnections", quote(mine["id"].replace("%2F", "/"), safe="/")):
        assert get(local_stack, f"/api/v1/pull-requests/{probe}", token)[0] == 404, probe


def test_tombstones_are_hidden_by_default_and_shown_with_include_deleted(local_stack):
    business = local_stack.ports.business
    for n in range(3):
        records.upsert(business, pr(TENANT, n))
    gone = pr(TENANT, 1)["id"]
    records.mark_deleted(business, "pull_requests", gone, "2026-02-01T00:00:00.000000Z",
                         "transferred")
    # a deletion heard of before the record was ever read: a placeholder, never shown
    records.mark_deleted(business, "pull_requests", pr(TENANT, 9)["id"],
                         "2026-02-01T00:00:00.000000Z")
    token = local_stack.token(TENANT, "u-1", "member")
    _, body = get(local_stack, "/api/v1/pull-requests", token)
    assert [i["number"] for i in body["items"]] == [0, 2]
    _, body = get(local_stack, "/api/v1/pull-requests?include_deleted=false", token)
    assert [i["number"] for i in body["items"]] == [0, 2]
    _, body = get(local_stack, "/api/v1/pull-requests?include_deleted=true", token)
    shown = {i["number"]: i for i in body["items"]}
    assert sorted(shown) == [0, 1, 2]
    assert (shown[1]["deleted"], shown[1]["deleted_reason"], shown[1]["deleted_at"]) == (
        True, "transferred", "2026-02-01T00:00:00.000000Z")
    path = f"/api/v1/pull-requests/{quote(gone, safe='')}"
    assert get(local_stack, path, token)[0] == 404
    status, one = get(local_stack, path + "?include_deleted=true", token)
    assert (status, one["deleted_reason"]) == (200, "transferred")
    placeholder = quote(pr(TENANT, 9)["id"], safe="")
    assert get(local_stack, f"/api/v1/pull-requests/{placeholder}?include_deleted=true",
               token)[0] == 404
    other = local_stack.token(OTHER, "u-2", "member")
    assert get(local_stack, path + "?include_deleted=true", other)[0] == 404


def test_include_deleted_accepts_only_true_or_false(local_stack):
    records.upsert(local_stack.ports.business, pr(TENANT, 0))
    token = local_stack.token(TENANT, "u-1", "member")
    for value in ("1", "yes", "TRUE", ""):
        response = local_stack.call("GET", f"/api/v1/pull-requests?include_deleted={value}",
                                    token)
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert "include_deleted" in json.loads(response.get_data())["detail"]
    rid = quote(pr(TENANT, 0)["id"], safe="")
    assert local_stack.call("GET", f"/api/v1/pull-requests/{rid}?include_deleted=no",
                            token).status_code == 400
