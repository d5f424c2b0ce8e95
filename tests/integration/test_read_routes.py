"""The read routes people reach for: one connection, the tenant's actions, one's identities."""

from __future__ import annotations

import json

from shared import ids
from shared.actions import model

TENANT, OTHER = "tenant:a", "tenant-b"  # a ':' in a tenant id on purpose


def get(stack, path: str, token: str):
    response = stack.call("GET", path, token)
    return response.status_code, json.loads(response.get_data())


def action(ports, tenant: str, action_id: str, at: str, user: str = "u-1",
           status: str = "pending") -> None:
    ports.business.put(model.COLLECTION, model.doc_id(tenant, action_id), {
        "tenant": tenant, "user": user, "provider": "github", "connection": "c-1",
        "kind": "comment", "target": {"repository": "r", "parent_kind": "issue", "number": 1},
        "fingerprint": "f" * 64, "status": status, "created_at": at, "published_at": None})


def test_one_connection_with_its_sync_summary_and_another_tenants_is_404(local_stack):
    ports = local_stack.ports
    ports.business.put("connections", "c-mine", {"tenant": TENANT, "provider": "gitlab",
                                                 "kind": "app", "status": "active"})
    ports.business.put("sync_status", "c-mine", {"state": "failed", "reason": "provider.5xx",
                                                 "retry_at": "2026-12-07T06:00:00.000000Z",
                                                 "consecutive_failures": 2})
    ports.business.put("connections", "c-theirs", {"tenant": OTHER, "status": "active"})
    token = local_stack.token(TENANT, "u-1", "member")
    code, body = get(local_stack, "/api/v1/connections/c-mine", token)
    assert code == 200 and body["id"] == "c-mine" and body["provider"] == "gitlab"
    assert body["sync"]["state"] == "failed" and body["sync"]["reason"] == "provider.5xx"
    assert body["sync"]["consecutive_failures"] == 2
    theirs, missing = (get(local_stack, f"/api/v1/connections/{c}", token) for c in
                       ("c-theirs", "c-nope"))
    assert theirs[0] == missing[0] == 404 and theirs[1]["title"] == missing[1]["title"]


def test_actions_page_newest_first_through_equal_timestamps_and_only_the_tenants(local_stack):
    ports = local_stack.ports
    same = "2026-12-07T05:00:00.000000Z"
    for n in range(5):  # five at one instant: a cursor must neither repeat nor skip them
        action(ports, TENANT, f"same-{n}", same)
    action(ports, TENANT, "newest", "2026-12-07T06:00:00.000000Z", user="u-2", status="done")
    action(ports, TENANT, "oldest", "2026-12-07T04:00:00.000000Z")
    action(ports, OTHER, "theirs", "2026-12-07T05:30:00.000000Z")
    token = local_stack.token(TENANT, "u-1", "member", scopes=["data:read"])
    seen, cursor = [], None
    while True:
        code, body = get(local_stack, "/api/v1/actions?limit=2" +
                         (f"&cursor={cursor}" if cursor else ""), token)
        assert code == 200
        seen += [item["id"] for item in body["items"]]
        assert all("tenant" not in item and "fingerprint" not in item for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen[0] == "newest" and seen[-1] == "oldest"
    assert sorted(seen[1:-1]) == [f"same-{n}" for n in range(5)] and len(seen) == 7
    _, done = get(local_stack, "/api/v1/actions?status=done", token)
    assert [i["id"] for i in done["items"]] == ["newest"]
    _, by_user = get(local_stack, "/api/v1/actions?user=u-2", token)
    assert [i["id"] for i in by_user["items"]] == ["newest"]
    for bad in ("limit=0", "limit=201", "cursor=%%%", "cursor=e30"):
        assert local_stack.call("GET", f"/api/v1/actions?{bad}", token).status_code == 400, bad
    none = local_stack.token(TENANT, "u-1", "member", scopes=["connections:read"])
    assert local_stack.call("GET", "/api/v1/actions", none).status_code == 403


def test_identities_are_ones_own_and_an_admin_may_read_a_members(local_stack):
    ports = local_stack.ports
    for tenant, user, provider in ((TENANT, "u-1", "github"), (TENANT, "u-1", "gitlab"),
                                   (TENANT, "u-2", "github"), (OTHER, "u-1", "github")):
        ports.business.put("identities", ids.identity_id(provider, tenant, user), {
            "tenant": tenant, "provider": provider, "user": user, "base_url": None,
            "account": {"id": "1", "login": f"{user}-{provider}"},
            "linked_at": "2026-12-07T05:00:00.000000Z"})
    member = local_stack.token(TENANT, "u-1", "member")
    code, body = get(local_stack, "/api/v1/identities", member)
    assert code == 200
    assert [(i["provider"], i["account"]["login"]) for i in body["items"]] == [
        ("github", "u-1-github"), ("gitlab", "u-1-gitlab")]
    assert local_stack.call("GET", "/api/v1/identities?user=u-2", member).status_code == 403
    admin = local_stack.token(TENANT, "u-9", "admin")
    _, theirs = get(local_stack, "/api/v1/identities?user=u-2", admin)
    assert [i["account"]["login"] for i in theirs["items"]] == ["u-2-github"]
