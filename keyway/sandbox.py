"""The ``make run`` sandbox: a simulator for every provider with no configured OAuth client.

Each is started on loopback (its former port and tokens back, :mod:`keyway.sandbox_state`),
shows its sign-in page (two seeded accounts), is seeded with activity and registered with an
OAuth client for ``<public_url>/oauth-<provider>/callback``; the environment then points keyway
at it (``KEYWAY_<PROVIDER>_CLIENT_ID``, ``_OAUTH_URL``, ``_API_URL`` and the client secret). The
sandbox GitHub also offers its GitHub App (:func:`_sandbox_app`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from keyway import sandbox_state
from keyway.firststart import ensure_github_app_key
from keyway.simulators import (
    BitbucketSimulator,
    GitHubSimulator,
    GitLabSimulator,
    JiraSimulator,
    Simulator,
)
from shared.log import get_logger
from shared.ports import SecretSource
from shared.providers import registry

log = get_logger("keyway.runner")

SANDBOX_SEED = {"github": "acme", "gitlab": "acme-group", "bitbucket": "acme-workspace",
                "jira": "acme"}
SANDBOX_SIMULATORS: tuple[tuple[str, type[Simulator]], ...] = (
    ("github", GitHubSimulator), ("gitlab", GitLabSimulator), ("bitbucket", BitbucketSimulator),
    ("jira", JiraSimulator))
# GitHub: keyway's KEYWAY_GITHUB_CLIENT_ID is an OAuth App (never-expiring gho_ tokens with
# classic scopes, so public repositories only); the sandbox GitHub App has its own client.
SANDBOX_OPTIONS: dict[str, dict] = {"github": {"expiring_tokens": False}}
SANDBOX_ACTIVITY = {"repos": 3, "prs": 60, "issues": 90, "comments": 400, "review_comments": 60,
                    "reviews": 40}


SANDBOX_APP = {"KEYWAY_GITHUB_APP_ID": "1000001", "KEYWAY_GITHUB_APP_SLUG": "keyway-sandbox",
               "KEYWAY_GITHUB_APP_CLIENT_ID": "keyway-sandbox-github-app"}
SANDBOX_INSTALLATION = 1


def start_sandbox(public_url: str, secrets_source: SecretSource | None = None,
                  state_dir: Path | None = None) -> dict[str, Simulator]:
    """Simulators for providers with no configured OAuth client; sets their env variables.
    With ``secrets_source``, the sandbox GitHub gets its App too (:func:`_sandbox_app`); with
    ``state_dir``, each simulator takes its former port and tokens back
    (:mod:`keyway.sandbox_state`)."""
    started: dict[str, Simulator] = {}
    saved = sandbox_state.load(state_dir) if state_dir is not None else {}
    for provider, simulator_class in SANDBOX_SIMULATORS:
        up = provider.upper()
        if os.environ.get(f"KEYWAY_{up}_CLIENT_ID"):
            continue
        simulator = simulator_class(port=sandbox_state.port_for(saved, provider),
                                    **SANDBOX_OPTIONS.get(provider, {})).start()
        sandbox_state.restore_tokens(simulator, saved, provider)
        simulator.sign_in_page()  # a person chooses which seeded account signs in
        secret = secrets.token_urlsafe(24)
        simulator.register_client(f"keyway-sandbox-{provider}", secret,
                                  [f"{public_url}/oauth-{provider}/callback"])
        simulator.seed_activity(SANDBOX_SEED[provider], **SANDBOX_ACTIVITY)
        if isinstance(simulator, GitHubSimulator) and secrets_source is not None:
            _sandbox_app(simulator, secrets_source, f"keyway-sandbox-{provider}")
        os.environ.update({f"KEYWAY_{up}_CLIENT_ID": f"keyway-sandbox-{provider}",
                           f"KEYWAY_{up}_OAUTH_URL": simulator.oauth_url,
                           f"KEYWAY_{up}_API_URL": simulator.api_url,
                           f"KEYWAY_SECRET_{up}_CLIENT_SECRET": secret})
        log.info("runner.sandbox_provider", extra={"fields": {"provider": provider,
                                                               "url": simulator.url}})
        started[provider] = simulator
    return started


def _sandbox_app(sim: GitHubSimulator, source: SecretSource, oauth_client_id: str) -> None:
    """Register the sandbox GitHub App and install it on the seeded organisation. Like a real
    App it has its own OAuth client (``keyway-sandbox-github-app``, a fresh random secret in
    ``KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET``), apart from the sandbox OAuth App
    ``oauth_client_id``, whose callback URL it shares: the install code is the App client's."""
    if os.environ.get("KEYWAY_GITHUB_APP_ID"):
        return  # an app is configured: its own key and id, not the sandbox's
    key = serialization.load_pem_private_key(ensure_github_app_key(source), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    client_secret = secrets.token_urlsafe(24)
    sim.apps.register_app(SANDBOX_APP["KEYWAY_GITHUB_APP_ID"], public,
                          registry.get("github").github_app.permissions,
                          slug=SANDBOX_APP["KEYWAY_GITHUB_APP_SLUG"],
                          client_id=SANDBOX_APP["KEYWAY_GITHUB_APP_CLIENT_ID"],
                          client_secret=client_secret,
                          redirect_uris=sim.oauth.clients[oauth_client_id].redirect_uris)
    sim.apps.add_installation(SANDBOX_INSTALLATION, SANDBOX_SEED["github"],
                              users=[sim.account.id])
    os.environ.update(SANDBOX_APP, KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET=client_secret)
