"""Which provider refusals keyway reads as a missing scope (``provider.insufficient_scope``)
rather than a rejected token or a bare refusal."""

from __future__ import annotations

import json

import pytest

from shared.fetch._scopes import lacks_scope

GITLAB_CHALLENGE = ('Bearer realm="Protected by OAuth 2.0", error="insufficient_scope", '
                    'error_description="…", scope="api"')


@pytest.mark.parametrize("status,headers,body", [
    (403, {"WWW-Authenticate": GITLAB_CHALLENGE}, {"error": "insufficient_scope"}),
    (403, {}, {"error": "insufficient_scope", "scope": "read_api api"}),
    (401, {}, {"code": 401, "message": "Unauthorized; scope does not match"}),
    (403, {}, {"type": "error", "error": {
        "message": "Your credentials lack one or more required privilege scopes.",
        "detail": {"granted": ["issue"], "required": ["issue:write"]}}}),
    (403, {"X-OAuth-Scopes": "read:org, read:user", "X-Accepted-OAuth-Scopes": "public_repo, repo"},
     {"message": "Forbidden"}),  # GitHub: a comment without public_repo
    (403, {"X-OAuth-Scopes": "", "X-Accepted-OAuth-Scopes": "admin:repo_hook, write:repo_hook"},
     {"message": "Not Found"}),
])
def test_each_providers_missing_scope_answer_is_recognised(status, headers, body):
    assert lacks_scope(status, headers, json.dumps(body).encode())


@pytest.mark.parametrize("status,headers,raw", [
    (401, {}, b'{"code": 401, "message": "Unauthorized"}'),  # Jira: a bad token
    (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b'{"error": "invalid_token"}'),
    (403, {}, b'{"message": "403 Forbidden"}'),  # GitLab: not a maintainer
    (403, {}, b'{"message": "Resource not accessible by integration"}'),
    (403, {}, b"<html>not json</html>"),
    (404, {}, b'{"error": "insufficient_scope"}'),  # only 401 and 403 say it
    (403, {}, None),
    # GitHub: the token holds an accepted scope, or one implying it: the refusal is not scopes
    (403, {"X-OAuth-Scopes": "repo", "X-Accepted-OAuth-Scopes": "public_repo"}, b"{}"),
    (403, {"X-OAuth-Scopes": "admin:repo_hook", "X-Accepted-OAuth-Scopes": "read:repo_hook"},
     b"{}"),
    (403, {"X-Accepted-OAuth-Scopes": "repo"}, b"{}"),  # no X-OAuth-Scopes: not an OAuth token
    (403, {"X-OAuth-Scopes": "", "X-Accepted-OAuth-Scopes": ""}, b"{}"),
    (404, {"X-OAuth-Scopes": "", "X-Accepted-OAuth-Scopes": "repo"}, b"{}"),
])
def test_other_refusals_are_not_a_missing_scope(status, headers, raw):
    assert not lacks_scope(status, headers, raw)
