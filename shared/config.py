"""Configuration: one typed object built from the environment and validated at start-up.

Every variable is listed in docs/CONFIGURATION.md. A wrong value raises
``ConfigError`` naming the variable, so a function fails at cold start with a clear message
instead of misbehaving later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from shared.errors import ConfigError

Backend = Literal["embedded", "emulator", "gcp"]
BACKENDS: tuple[Backend, ...] = ("embedded", "emulator", "gcp")
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_HOSTPORT_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: SQLite's durability levels for the embedded stores and bus (WAL mode): ``normal`` survives a
#: crash of the process (a commit is in the WAL before it returns) but may lose the last commits
#: on power loss; ``full`` also fsyncs every commit (about 0.5 ms each on a typical disk).
SQLITE_SYNCHRONOUS = ("normal", "full")
_DATABASE_RE = re.compile(r"^(\(default\)|[a-z][a-z0-9-]{2,62})$")


@dataclass(frozen=True)
class Config:
    backend: Backend
    state_dir: Path
    project: str
    business_database: str
    vault_database: str
    kms_location: str
    kms_key_ring: str
    firestore_emulator_host: str | None
    pubsub_emulator_host: str | None
    secrets_file: Path
    port: int
    log_level: str
    tick_seconds: float
    public_url: str
    frontend_url: str
    auth_issuer: str
    auth_audience: str
    auth_jwks_url: str | None
    auth_tenant_claim: str
    auth_role_claim: str
    sync_budget_seconds: float = 60.0
    sync_lease_seconds: float = 300.0
    sync_retry_seconds: float = 60.0
    sqlite_synchronous: str = "normal"
    api_max_body_bytes: int = 1024 * 1024
    disconnected_retention_days: int = 30
    delivery_recovery_seconds: int = 3600
    console_origins: tuple[str, ...] = ()
    reconcile_days: int = 7
    reconcile_totals_hours: int = 24
    write_ramp_start: int = 500  # gcp: writes/s a sync starts a collection at (500/50/5)

    @property
    def local_mode(self) -> bool:
        """True for embedded and emulator backends: loopback provider URLs are allowed."""
        return self.backend != "gcp"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        backend = _choice(env, "KEYWAY_BACKEND", "embedded", BACKENDS)
        state_dir = Path(env.get("KEYWAY_STATE_DIR") or ".keyway").resolve()
        default_project = "keyway-local" if backend != "gcp" else ""
        project = env.get("KEYWAY_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or default_project
        if not _PROJECT_RE.match(project):
            raise ConfigError(
                "KEYWAY_PROJECT must be a GCP project id (6-30 lowercase letters, digits, "
                f"hyphens); got {project!r}"
            )
        fs_host = env.get("FIRESTORE_EMULATOR_HOST") or None
        ps_host = env.get("PUBSUB_EMULATOR_HOST") or None
        if backend == "emulator":
            for name, value in (("FIRESTORE_EMULATOR_HOST", fs_host),
                                ("PUBSUB_EMULATOR_HOST", ps_host)):
                if not value or not _HOSTPORT_RE.match(value):
                    raise ConfigError(f"{name} must be host:port when KEYWAY_BACKEND=emulator")
        if backend == "gcp" and (fs_host or ps_host):
            raise ConfigError(
                "FIRESTORE_EMULATOR_HOST/PUBSUB_EMULATOR_HOST must be unset when KEYWAY_BACKEND=gcp"
            )
        port = _int(env, "PORT", 8080, 1, 65535)
        https = backend == "gcp"
        public_url = _url(env, "KEYWAY_PUBLIC_URL", "" if https else f"http://127.0.0.1:{port}",
                          https).rstrip("/")
        issuer = _url(env, "KEYWAY_AUTH_ISSUER", "" if https else f"{public_url}/api/local-issuer",
                      https)
        budget = float(_int(env, "KEYWAY_SYNC_BUDGET_SECONDS", 60, 1, 3600))
        return cls(
            backend=backend,
            state_dir=state_dir,
            project=project,
            business_database=_database(env, "KEYWAY_BUSINESS_DATABASE", "(default)"),
            vault_database=_database(env, "KEYWAY_VAULT_DATABASE", "vault"),
            kms_location=_name(env, "KEYWAY_KMS_LOCATION", "europe-west1"),
            kms_key_ring=_name(env, "KEYWAY_KMS_KEY_RING", "keyway"),
            firestore_emulator_host=fs_host,
            pubsub_emulator_host=ps_host,
            secrets_file=Path(env.get("KEYWAY_SECRETS_FILE") or state_dir / "secrets.json"),
            port=port,
            log_level=_choice(env, "KEYWAY_LOG_LEVEL", "INFO", _LEVELS),
            tick_seconds=float(_int(env, "KEYWAY_TICK_SECONDS", 60, 1, 86400)),
            public_url=public_url,
            frontend_url=_url(env, "KEYWAY_FRONTEND_URL", f"{public_url}/api/v1/connect-result",
                              https),
            auth_issuer=issuer,
            auth_audience=env.get("KEYWAY_AUTH_AUDIENCE") or "keyway-api",
            auth_jwks_url=_url(env, "KEYWAY_AUTH_JWKS_URL", "", https) or None,
            auth_tenant_claim=env.get("KEYWAY_AUTH_TENANT_CLAIM") or "https://keyway.dev/tenant",
            auth_role_claim=env.get("KEYWAY_AUTH_ROLE_CLAIM") or "https://keyway.dev/role",
            sync_budget_seconds=budget,
            sync_lease_seconds=_lease(env, budget),
            sync_retry_seconds=float(_int(env, "KEYWAY_SYNC_RETRY_SECONDS", 60, 1, 3600)),
            sqlite_synchronous=_choice(env, "KEYWAY_SQLITE_SYNCHRONOUS", "normal",
                                       SQLITE_SYNCHRONOUS),
            api_max_body_bytes=_int(env, "KEYWAY_API_MAX_BODY_BYTES", 1024 * 1024, 1024,
                                    32 * 1024 * 1024),
            reconcile_days=_int(env, "KEYWAY_RECONCILE_DAYS", 7, 1, 365),
            reconcile_totals_hours=_int(env, "KEYWAY_RECONCILE_TOTALS_HOURS", 24, 0, 24 * 365),
            disconnected_retention_days=_int(env, "KEYWAY_DISCONNECTED_RETENTION_DAYS", 30, 0,
                                             3650),
            delivery_recovery_seconds=_int(env, "KEYWAY_DELIVERY_RECOVERY_SECONDS", 3600, 0,
                                           86400),
            console_origins=_origins(env, "KEYWAY_CONSOLE_ORIGINS", public_url, https),
            write_ramp_start=_int(env, "KEYWAY_WRITE_RAMP_START", 500, 0, 10_000),
        )


def _lease(env: Mapping[str, str], budget: float) -> float:
    """A fetch's sync lease: longer than its time budget, or a live run would look dead
    (unset: 300 s, or twice the budget when that is longer)."""
    default = max(300, int(2 * budget))
    lease = float(_int(env, "KEYWAY_SYNC_LEASE_SECONDS", default, 2, 7200))
    if lease <= budget:
        raise ConfigError("KEYWAY_SYNC_LEASE_SECONDS must be longer than "
                          f"KEYWAY_SYNC_BUDGET_SECONDS ({budget:g}); got {lease:g}")
    return lease


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer; got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}; got {value}")
    return value


def _database(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not _DATABASE_RE.match(value):
        raise ConfigError(f"{name} must be a Firestore database id; got {value!r}")
    return value


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", value):
        raise ConfigError(f"{name} must be lowercase letters, digits, '-' or '_'; got {value!r}")
    return value


def _origins(env: Mapping[str, str], name: str, public_url: str,
             require_https: bool) -> tuple[str, ...]:
    """Space-separated origins (``scheme://host[:port]``, no path) that may frame the console
    and receive a connect popup's result; default: keyway's own public origin."""
    parts = urlsplit(public_url)
    values = (env.get(name) or f"{parts.scheme}://{parts.netloc}").split()
    schemes = ("https",) if require_https else ("http", "https")
    for value in values:
        parsed = urlsplit(value)
        if (parsed.scheme not in schemes or not parsed.hostname or parsed.path
                or parsed.query or parsed.fragment):
            raise ConfigError(f"{name} must list origins ({' or '.join(schemes)}://host[:port], "
                              f"no path); got {value!r}")
    return tuple(values)


def _url(env: Mapping[str, str], name: str, default: str, require_https: bool) -> str:
    """An absolute http(s) URL, as given; https only when ``require_https``.

    An empty default means the variable is required (for the gcp backend) unless it is the
    optional JWKS URL, which callers treat as unset.
    """
    value = env.get(name) or default
    if not value:
        if name == "KEYWAY_AUTH_JWKS_URL":
            return ""
        raise ConfigError(f"{name} is required when KEYWAY_BACKEND=gcp")
    parsed = urlsplit(value)
    schemes = ("https",) if require_https else ("http", "https")
    if parsed.scheme not in schemes or not parsed.hostname or parsed.query or parsed.fragment:
        raise ConfigError(f"{name} must be an absolute {' or '.join(schemes)} URL; got {value!r}")
    return value
