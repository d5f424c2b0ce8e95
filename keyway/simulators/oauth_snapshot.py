"""A simulator's issued tokens as JSON, so the sandbox survives a ``make run`` restart.

:func:`snapshot` captures what an :class:`~keyway.simulators.oauth.OAuthAuthority` issued
(access tokens and what they stand for, refresh tokens, revocations; for Jira's
:class:`~keyway.simulators.jira_oauth.RotatingAuthority` also its refresh-token families and
when each was used), :func:`restore` puts it back into a fresh authority. Installation tokens
(``ghs_``) are left out: they live an hour and keyway mints new ones with the App's key.
These are the simulated provider's own records — what GitHub keeps in its database — not
keyway's; keyway's tokens stay sealed in its vault.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from keyway.simulators.jira_oauth import Family, RotatingAuthority
from keyway.simulators.oauth import OAuthAuthority, _Refresh
from keyway.simulators.oauth_model import Account, TokenInfo

_SKIPPED_PREFIXES = ("ghs_",)


def snapshot(authority: OAuthAuthority) -> dict[str, Any]:
    with authority._lock:
        data: dict[str, Any] = {
            "access": {t: asdict(i) for t, i in authority.access_tokens.items()
                       if not t.startswith(_SKIPPED_PREFIXES)},
            "refresh": {t: asdict(r) for t, r in authority.refresh_tokens.items()},
            "revoked": sorted(authority.revoked),
        }
        if isinstance(authority, RotatingAuthority):
            families = {id(f): f for f in authority._family_of.values()}
            data["families"] = [{"tokens": list(f.tokens), "revoked": f.revoked}
                                for f in families.values()]
            data["used_at"] = dict(authority._used_at)
    return data


def restore(authority: OAuthAuthority, data: dict[str, Any]) -> None:
    with authority._lock:
        for token, raw in data.get("access", {}).items():
            authority.access_tokens[token] = TokenInfo(**{
                **raw, "account": Account(**raw["account"]), "scopes": tuple(raw["scopes"])})
        for token, raw in data.get("refresh", {}).items():
            authority.refresh_tokens[token] = _Refresh(**{
                **raw, "account": Account(**raw["account"]), "scopes": tuple(raw["scopes"])})
        authority.revoked.update(data.get("revoked", []))
        if isinstance(authority, RotatingAuthority):
            for raw in data.get("families", []):
                family = Family(list(raw["tokens"]), bool(raw["revoked"]))
                for token in family.tokens:
                    if token in authority.refresh_tokens or token in authority.revoked:
                        authority._family_of[token] = family
            authority._used_at.update(data.get("used_at", {}))
