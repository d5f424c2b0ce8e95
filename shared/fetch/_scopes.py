"""Whether a provider's 401/403 says the token lacks a scope (rather than that the token is
bad or the user may not see the thing), in each provider's own words:

* RFC 6750 §3.1, as GitLab (Doorkeeper) answers: 403 with ``WWW-Authenticate: Bearer …,
  error="insufficient_scope"`` and ``{"error": "insufficient_scope", …}``;
* the Atlassian API gateway (Jira Cloud): 401 ``{"code": 401, "message": "Unauthorized; scope
  does not match"}``;
* Bitbucket Cloud: 403 ``{"type": "error", "error": {"message": "Your credentials lack one or
  more required privilege scopes.", …}}``;
* GitHub (OAuth App tokens, "Scopes for OAuth apps"): a 403 whose ``X-Accepted-OAuth-Scopes``
  names scopes of which ``X-OAuth-Scopes`` (what the token has, with the scopes each implies)
  holds none.

Only the status, one header and these fixed strings are read; nothing of the body is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# GitHub's scope hierarchy ("Scopes for OAuth apps"): a scope also grants the ones listed.
GITHUB_IMPLIES = {"repo": ("public_repo", "repo:status", "repo_deployment", "repo:invite"),
                  "admin:repo_hook": ("write:repo_hook", "read:repo_hook"),
                  "write:repo_hook": ("read:repo_hook",),
                  "admin:org": ("write:org", "read:org"), "write:org": ("read:org",),
                  "admin:org_hook": (), "user": ("read:user", "user:email", "user:follow")}
MESSAGES = frozenset({"Unauthorized; scope does not match",
                      "Your credentials lack one or more required privilege scopes."})


def _message(body: Any) -> Any:
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if error == "insufficient_scope":
        return error
    return error.get("message") if isinstance(error, dict) else body.get("message")


def lacks_scope(status: int, headers: Mapping[str, str], raw: bytes | None) -> bool:
    """True when a 401/403 answer says the token lacks a scope the request needs."""
    if status not in (401, 403):
        return False
    if 'error="insufficient_scope"' in headers.get("WWW-Authenticate", ""):
        return True
    if status == 403 and _github_lacks(headers):
        return True
    try:
        found = _message(json.loads(raw or b"null"))
    except ValueError:
        return False
    return found == "insufficient_scope" or found in MESSAGES


def _listed(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def _github_lacks(headers: Mapping[str, str]) -> bool:
    """GitHub's answer names the scopes the endpoint accepts, and the token has none of them."""
    accepted = _listed(headers.get("X-Accepted-OAuth-Scopes"))
    if not accepted or headers.get("X-OAuth-Scopes") is None:
        return False
    granted = _listed(headers.get("X-OAuth-Scopes"))
    granted |= {implied for scope in granted for implied in GITHUB_IMPLIES.get(scope, ())}
    return not accepted & granted
