"""Secret Manager: the GCP SecretSource, over the official ``google.cloud.secretmanager`` client.

Secrets live at ``projects/P/secrets/NAME`` (automatic replication); versions at
``projects/P/secrets/NAME/versions/V`` with ``V`` ``"latest"`` (the newest *enabled*
version, as the port defines it) or a number. Payloads carry
CRC32C checksums both ways. No such secret, version, or a disabled version → ``NotFound``
naming the secret (never a value); an outage → ``UnavailableError`` after the client's
retries, bounded by ``deadline`` seconds per call.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import secretmanager

from shared.adapters.embedded.local_secrets import (
    validate_secret_name,
    validate_value,
    validate_version,
)
from shared.adapters.gcp._errors import boundary
from shared.adapters.gcp._wire import crc32c, transient_retry
from shared.errors import NotFound, UnavailableError

_ENABLED = secretmanager.SecretVersion.State.ENABLED


class SecretManagerSource:
    """SecretSource over one project's Secret Manager."""

    def __init__(
        self,
        project: str,
        *,
        client: secretmanager.SecretManagerServiceClient | None = None,
        deadline: float = 30.0,
    ) -> None:
        self._client = client if client is not None else secretmanager.SecretManagerServiceClient()
        self._project = f"projects/{project}"
        self._opts: dict[str, Any] = {"retry": transient_retry(deadline), "timeout": deadline}

    def __repr__(self) -> str:
        return f"SecretManagerSource(project={self._project!r})"

    def __reduce__(self) -> Any:
        raise TypeError("SecretManagerSource cannot be pickled")

    def access(self, name: str, version: str = "latest") -> bytes:
        """The payload of ``name`` at ``version``, checksum-verified.

        Secret Manager's ``latest`` alias is the newest version *whatever its state*; the port
        promises the newest *enabled* one, so a disabled newest version falls back to listing
        the enabled versions and taking the highest id.
        """
        validate_secret_name(name)
        validate_version(version)
        value = self._fetch(name, version)
        if value is None and version == "latest":
            newest = self._newest_enabled(name)
            value = self._fetch(name, newest) if newest is not None else None
        if value is None:
            raise NotFound(f"secret {name!r} has no enabled version {version!r}")
        return value

    def _fetch(self, name: str, version: str) -> bytes | None:
        """One version's payload; ``None`` if disabled or destroyed; missing → ``NotFound``."""
        path = f"{self._project}/secrets/{name}/versions/{version}"
        with boundary("secretmanager.access"):
            try:
                response = self._client.access_secret_version(name=path, **self._opts)
            except gexc.NotFound as e:
                raise NotFound(f"secret {name!r} has no enabled version {version!r}") from e
            except gexc.GoogleAPICallError as e:
                if not _is_disabled(e):
                    raise
                return None
        payload = response.payload
        if "data_crc32c" in payload and crc32c(payload.data) != payload.data_crc32c:
            raise UnavailableError("secretmanager.access: checksum verification failed")
        return bytes(payload.data)

    def _newest_enabled(self, name: str) -> str | None:
        """The highest id among the enabled versions of ``name``, if any."""
        with boundary("secretmanager.list_versions"):
            pages = self._client.list_secret_versions(
                request={"parent": f"{self._project}/secrets/{name}", "filter": "state:ENABLED"},
                **self._opts,
            )
            ids = [int(v.name.rsplit("/", 1)[-1]) for v in pages if v.state == _ENABLED]
        return str(max(ids)) if ids else None

    def add_version(self, name: str, value: bytes) -> str:
        """Add ``value`` as a new version and return its id; create the secret (automatic
        replication) only if it does not exist yet — so a component that may add versions
        but not create secrets (least privilege: Terraform creates them) still works."""
        validate_secret_name(name)
        validate_value(value)
        with boundary("secretmanager.add_version"):
            try:
                version = self._add(name, value)
            except gexc.NotFound:
                try:
                    self._client.create_secret(
                        parent=self._project,
                        secret_id=name,
                        secret={"replication": {"automatic": {}}},
                        **self._opts,
                    )
                except (gexc.AlreadyExists, gexc.Conflict):
                    pass
                version = self._add(name, value)
        return version.name.rsplit("/", 1)[-1]

    def delete(self, name: str) -> None:
        """Delete the secret with all its versions (``delete_secret``); missing → ``NotFound``."""
        validate_secret_name(name)
        with boundary("secretmanager.delete"):
            try:
                self._client.delete_secret(name=f"{self._project}/secrets/{name}", **self._opts)
            except gexc.NotFound as e:
                raise NotFound(f"secret {name!r} does not exist") from e

    def _add(self, name: str, value: bytes):
        return self._client.add_secret_version(
            parent=f"{self._project}/secrets/{name}",
            payload={"data": value, "data_crc32c": crc32c(value)},
            **self._opts,
        )


def _is_disabled(error: gexc.GoogleAPICallError) -> bool:
    """Whether the service refused a disabled or destroyed version (gRPC or REST transport)."""
    if isinstance(error, gexc.FailedPrecondition):
        return True
    try:  # over REST a FAILED_PRECONDITION arrives as HTTP 400 with the status in the body
        return error.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    except (AttributeError, KeyError, TypeError, ValueError):
        return False
