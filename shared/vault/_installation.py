"""GitHub App installation records: the vault holds no token for them, it mints one per release.

An installation record is an app record (``app_tokens/<connection>``, kind ``app``) with an
``installation_id`` and no token field at all. Releasing it mints a 1-hour installation token
(:mod:`shared.vault.github_app`, cached in memory per installation) — there is no refresh
token, so the :class:`~shared.vault.refresh.Refresher` never sees such a record. An
uninstalled or suspended installation marks the record ``needs_reauth``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import requests

from shared.clock import isoformat
from shared.errors import PermanentError
from shared.ports import Ports
from shared.providers import registry
from shared.vault.github_app import (
    APP_ID_ENV,
    PRIVATE_KEY_SECRET,
    InstallationGone,
    InstallationTokenMinter,
    _installation_key,
    load_app_credentials,
)
from shared.vault.refresh import NeedsReauth
from shared.vault.tokens import TokenSet


class AppNotConfigured(PermanentError):
    key, title = "github_app.not_configured", "No GitHub App is configured"


def record(provider: str, tenant: str, installation_id: str,
           base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (clear metadata) plus the installation: no token field, encrypted or not."""
    if registry.get(provider).github_app is None:
        raise PermanentError(f"{provider} has no app installations", key="github_app.unsupported")
    return {**base, "tenant": tenant, "provider": provider,
            "installation_id": _installation_key(installation_id),
            "expires_at": None, "scopes": [], "account_id": None}


class InstallationTokens:
    """One :class:`InstallationTokenMinter` per API base, built on first use (thread-safe)."""

    def __init__(self, provider: str, ports: Ports,
                 env: Mapping[str, str] | None = None) -> None:
        self._provider, self._ports, self._env = provider, ports, env
        self._minters: dict[str | None, InstallationTokenMinter] = {}
        self._lock = threading.Lock()

    def mint(self, collection: str, record_id: str, doc: dict[str, Any]) -> TokenSet:
        """A live installation token for the record; a gone installation → ``needs_reauth``."""
        installation_id = str(doc["installation_id"])
        try:
            return self._minter(doc.get("base_url")).mint(installation_id)
        except InstallationGone:
            self._ports.vault.transaction(
                lambda tx: self._mark_gone(tx, collection, record_id, installation_id))
            raise NeedsReauth("the GitHub App installation is gone; reconnect") from None

    def forget(self, doc: dict[str, Any]) -> None:
        """Drop the cached token of a record's installation (after a disconnect)."""
        with self._lock:
            minter = self._minters.get(doc.get("base_url"))
        if minter is not None:
            minter.invalidate(str(doc["installation_id"]))

    def _minter(self, base_url: str | None) -> InstallationTokenMinter:
        with self._lock:
            if base_url not in self._minters:
                self._minters[base_url] = self._build(base_url)
            return self._minters[base_url]

    def _build(self, base_url: str | None) -> InstallationTokenMinter:
        env = os.environ if self._env is None else self._env
        spec = registry.get(self._provider)
        credentials = load_app_credentials(self._ports.secrets, env)
        if credentials is None or spec.github_app is None:
            raise AppNotConfigured(f"set {APP_ID_ENV} and the secret {PRIVATE_KEY_SECRET} "
                                   "to mint GitHub App installation tokens")
        return InstallationTokenMinter(credentials, registry.api_base_url(spec, env, base_url),
                                       requests.Session(), self._ports.clock, spec.github_app)

    def _mark_gone(self, tx: Any, collection: str, record_id: str, installation_id: str) -> None:
        current = tx.get(collection, record_id)
        if current is None or str(current.get("installation_id")) != installation_id:
            return  # deleted or reconnected meanwhile
        tx.put(collection, record_id, dict(current, status="needs_reauth",
                                           updated_at=isoformat(self._ports.clock.now())))
