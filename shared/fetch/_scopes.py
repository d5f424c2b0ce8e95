"""Whether a provider's 401/403 says the token lacks a scope (rather than that the token is
bad or the user may not see the thing), in each provider's own words:

* RFC 6750 §3.1, as GitLab (Doorkeeper) answers: 403 with ``WWW-Authenticate: Bearer …,
  error="insufficient_scope"`` and ``{"error": "insufficient_scope", …}``;
* the Atlassian API gateway (Jira Cloud): 401 ``{"code": 401, "message": "Unauthorized; scope
  does not match"}``;
* Bitbucket Cloud: 403 ``{"type": "error", "error": {"message": "Your credentials lack one or
  more required privilege scopes.", …}}``.

Only the status, one header and these fixed strings are read; nothing of the body is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
    try:
        found = _message(json.loads(raw or b"null"))
    except ValueError:
        return False
    return found == "insufficient_scope" or found in MESSAGES
