"""Fixtures for the vault tests: real embedded ports and a real OAuth token server."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from shared.bootstrap import build
from shared.config import Config
from shared.crypto import channels
from shared.vault.oauth import ClientCredentials, OAuthTokenClient
from shared.vault.service import VaultService
from tests.fakes.oauth_token_server import OAuthTokenServer


@pytest.fixture
def token_server(leak_guard):
    """Every token it issues is tracked: a test that leaks one into a log line, an exception
    or a checked response fails."""
    server = OAuthTokenServer(on_issue=leak_guard.track).start()
    yield server
    server.stop()


@pytest.fixture
def ports(tmp_path: Path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    for provider in ("github", "gitlab"):
        ports.keys.ensure_key(f"vault-{provider}")
    channels.ensure(ports.secrets)
    return ports


def make_service(ports, server: OAuthTokenServer, provider: str = "github") -> VaultService:
    endpoint = OAuthTokenClient(
        f"{server.url}/token", ClientCredentials(server.client_id, server.client_secret),
        requests.Session(), ports.clock, revoke_url=f"{server.url}/revoke")
    return VaultService(provider, ports, endpoint)


@pytest.fixture
def vault(ports, token_server) -> VaultService:
    return make_service(ports, token_server)
