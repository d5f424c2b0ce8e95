"""The composition root: the one place that turns a :class:`Config` into wired adapters.

``KEYWAY_BACKEND`` picks the adapters:

=========  ======================  =====================  ==================  ==================
backend    documents (business,    bus                    keys                secrets
           vault)
=========  ======================  =====================  ==================  ==================
embedded   SQLite files in the     SQLite durable bus     local KMS (key      env, then local
           state dir                                      dir, 0600 files)    secrets file
emulator   Firestore emulator      Pub/Sub emulator       local KMS           env, then file
gcp        Firestore (default)     Cloud Pub/Sub          Cloud KMS           Secret Manager
           and ``vault`` dbs
=========  ======================  =====================  ==================  ==================

GCP adapters are imported lazily so the embedded backend never loads ``google.cloud``; on the
gcp backend Cloud KMS and Secret Manager are built on first use (:class:`Lazy`), so functions
that never use them never import their clients.
Tests pass their own ports through :func:`build` with the same signature.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

from shared.clock import SystemClock
from shared.config import Config
from shared.ports import Clock, Ports


def build(config: Config, clock: Clock | None = None) -> Ports:
    """Wire fresh adapters for ``config`` (no caching; see :func:`ports`)."""
    clock = clock or SystemClock()
    if config.backend == "embedded":
        business, vault, bus = _embedded_stores(config, clock)
    else:
        business, vault, bus = _gcp_stores(config)
    keys, secrets = _key_and_secret_adapters(config)
    return Ports(business=business, vault=vault, bus=bus, keys=keys, secrets=secrets, clock=clock)


@functools.cache
def environment_config() -> Config:
    """The process-wide configuration from the environment (validated once per instance)."""
    return Config.from_env()


config = environment_config  # the name entry points use: bootstrap.config()


def ports(config: Config | None = None) -> Ports:
    """The process-wide ports for ``config`` (from the environment when omitted).

    Functions call this once per instance (cold start); every later call with an equal config
    returns the same adapters, so connections and cached keys are reused across invocations.
    """
    return _cached(config if config is not None else environment_config())


@functools.cache
def _cached(config: Config) -> Ports:
    return build(config)


def _embedded_stores(config: Config, clock: Clock):
    from shared.adapters.embedded.sqlite_bus import SqliteMessageBus
    from shared.adapters.embedded.sqlite_store import SqliteDocumentStore

    _ensure_state_dir(config)
    return (
        SqliteDocumentStore(config.state_dir / "business.db",
                            synchronous=config.sqlite_synchronous),
        SqliteDocumentStore(config.state_dir / "vault.db", synchronous=config.sqlite_synchronous),
        SqliteMessageBus(config.state_dir / "bus.db", clock,
                         synchronous=config.sqlite_synchronous),
    )


def _gcp_stores(config: Config):
    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
    from shared.adapters.gcp.pubsub_bus import PubSubMessageBus

    return (
        FirestoreDocumentStore(config.project, config.business_database),
        FirestoreDocumentStore(config.project, config.vault_database),
        PubSubMessageBus(config.project),
    )


class Lazy:
    """A port whose adapter is built (and its client library imported) on first use, so a
    function that never touches Cloud KMS — webhooks, the api, fetchers — never loads it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._adapter: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._adapter is None:
            with self._lock:
                if self._adapter is None:
                    self._adapter = self._factory()
        return getattr(self._adapter, name)


def _cloud_keys(config: Config) -> Any:
    from shared.adapters.gcp.cloud_kms import CloudKeyService

    return CloudKeyService(config.project, config.kms_location, config.kms_key_ring)


def _secret_manager(config: Config) -> Any:
    from shared.adapters.gcp.secret_manager import SecretManagerSource

    return SecretManagerSource(config.project)


def _key_and_secret_adapters(config: Config):
    if config.backend == "gcp":
        return (Lazy(lambda: _cloud_keys(config)), Lazy(lambda: _secret_manager(config)))
    from shared.adapters.embedded.local_kms import LocalKeyService
    from shared.adapters.embedded.local_secrets import LocalSecretSource

    _ensure_state_dir(config)
    return LocalKeyService(config.state_dir / "keys"), LocalSecretSource(config.secrets_file)


def _ensure_state_dir(config: Config) -> None:
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config.state_dir, 0o700)
