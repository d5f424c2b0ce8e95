"""Every allowlisted endpoint (``providers.json`` ``api.allowlist``) has a simulator contract
case, or is listed as not applicable with a reason; and the GitHub simulator refuses
installation tokens exactly where api.github.com's description says GitHub Apps cannot go.
"""

from __future__ import annotations

import pytest

from shared.providers import registry
from tests.contract import (
    _described,
    test_bitbucket_contract,
    test_github_rest_contract,
    test_gitlab_contract,
    test_jira_contract,
)

EXTRA = {  # cases kept outside CASES (checked against a hand-written schema)
    "github": {test_github_rest_contract.INSTALLATION_CASE.op},
    "bitbucket": {test_bitbucket_contract.WORKSPACES.op},
    "jira": {test_jira_contract.RESOURCES.op},
}
MODULES = {"github": test_github_rest_contract, "gitlab": test_gitlab_contract,
           "bitbucket": test_bitbucket_contract, "jira": test_jira_contract}


def _cases(provider: str) -> set[str]:
    cases = MODULES[provider].CASES
    ops = {(c[0] if isinstance(c, tuple) else c).op for c in cases}
    return ops | EXTRA.get(provider, set())


@pytest.mark.parametrize("provider", sorted(MODULES))
def test_every_allowlisted_endpoint_has_a_case_or_a_reason(provider: str) -> None:
    allowlist = set(registry.get(provider).api.allowlist)
    covered, waived = _cases(provider), MODULES[provider].NOT_APPLICABLE
    assert not covered & set(waived), "an endpoint is both tested and waived"
    assert all(isinstance(why, str) and len(why) > 20 for why in waived.values())
    missing = allowlist - covered - set(waived)
    assert not missing, f"{provider}: no contract case and no reason for {sorted(missing)}"
    stale = (covered | set(waived)) - allowlist
    assert not stale, f"{provider}: cases or reasons for endpoints not allowlisted: {stale}"


def test_installation_refusals_match_enabled_for_github_apps() -> None:
    """``NOT_FOR_INSTALLATIONS`` (the "METHOD /template"s the simulator refuses to installation
    tokens) is exactly the allowlisted operations @octokit/openapi marks
    ``x-github.enabledForGitHubApps: false``."""
    from keyway.simulators import github_tokens as tokens
    description = _described.github()
    disabled = set()
    for op in registry.get("github").api.allowlist:
        method, template = op.split(" ", 1)
        operation = description.operation(method, template)
        if operation.doc.get("x-github", {}).get("enabledForGitHubApps") is False:
            disabled.add(op)
    assert disabled, "the description marks none: the check would be vacuous"
    assert set(tokens.NOT_FOR_INSTALLATIONS) == disabled
