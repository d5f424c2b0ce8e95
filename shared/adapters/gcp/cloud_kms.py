"""Cloud KMS: the GCP KeyService, over the official ``google.cloud.kms`` client.

``key_name`` maps to ``projects/P/locations/L/keyRings/R/cryptoKeys/<key_name>``, a symmetric
``ENCRYPT_DECRYPT`` key (``GOOGLE_SYMMETRIC_ENCRYPTION``). Every request and response carries
CRC32C checksums (computed here in pure Python: ``google-crc32c`` is optional and not
installed); a mismatch is treated as a transient transport fault (``UnavailableError``).

Errors: a rejected ciphertext (bad data, wrong associated data, missing or disabled key
version) → the opaque ``CryptoError``; an outage → ``UnavailableError`` after the client's
retries, which are bounded by ``deadline`` seconds per call.
"""

from __future__ import annotations

import time
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import kms

from shared.adapters.embedded.local_kms import validate_key_name, validate_payload
from shared.adapters.gcp._errors import boundary
from shared.adapters.gcp._wire import crc32c, transient_retry
from shared.errors import CryptoError, UnavailableError

_ENABLED = kms.CryptoKeyVersion.CryptoKeyVersionState.ENABLED
_PENDING = kms.CryptoKeyVersion.CryptoKeyVersionState.PENDING_GENERATION
_SYMMETRIC = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm.GOOGLE_SYMMETRIC_ENCRYPTION


class CloudKeyService:
    """KeyService over Cloud KMS keys in one key ring."""

    def __init__(
        self,
        project: str,
        location: str,
        key_ring: str,
        *,
        client: kms.KeyManagementServiceClient | None = None,
        deadline: float = 30.0,
    ) -> None:
        self._client = client if client is not None else kms.KeyManagementServiceClient()
        self._location = f"projects/{project}/locations/{location}"
        self._ring_id = key_ring
        self._ring = f"{self._location}/keyRings/{key_ring}"
        self._deadline = deadline
        self._opts: dict[str, Any] = {"retry": transient_retry(deadline), "timeout": deadline}

    def __repr__(self) -> str:
        return f"CloudKeyService(key_ring={self._ring!r})"

    def key_path(self, key_name: str) -> str:
        """The Cloud KMS resource name of ``key_name``."""
        return f"{self._ring}/cryptoKeys/{validate_key_name(key_name)}"

    def ensure_key(self, key_name: str) -> None:
        """Create the key ring and key if missing (``AlreadyExists`` is fine)."""
        name = self.key_path(key_name)
        with boundary("kms.ensure_key"):
            try:
                self._client.get_crypto_key(name=name, **self._opts)
                return
            except gexc.NotFound:
                pass
            try:
                self._client.create_key_ring(
                    parent=self._location, key_ring_id=self._ring_id, key_ring={}, **self._opts
                )
            except (gexc.AlreadyExists, gexc.Conflict):
                pass
            key = {
                "purpose": kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT,
                "version_template": {"algorithm": _SYMMETRIC},
            }
            try:
                self._client.create_crypto_key(
                    parent=self._ring, crypto_key_id=key_name, crypto_key=key, **self._opts
                )
            except (gexc.AlreadyExists, gexc.Conflict):
                pass

    def encrypt(self, key_name: str, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt under the primary version; missing key → ``NotFound``."""
        name = self.key_path(key_name)
        validate_payload(plaintext, associated_data)
        with boundary("kms.encrypt"):
            response = self._client.encrypt(
                request={
                    "name": name,
                    "plaintext": plaintext,
                    "additional_authenticated_data": associated_data,
                    "plaintext_crc32c": crc32c(plaintext),
                    "additional_authenticated_data_crc32c": crc32c(associated_data),
                },
                **self._opts,
            )
        intact = (
            response.verified_plaintext_crc32c
            and response.verified_additional_authenticated_data_crc32c
            and "ciphertext_crc32c" in response
            and crc32c(response.ciphertext) == response.ciphertext_crc32c
        )
        if not intact:
            raise UnavailableError("kms.encrypt: checksum verification failed in transit")
        return bytes(response.ciphertext)

    def decrypt(self, key_name: str, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Decrypt; any rejection is the opaque ``CryptoError``."""
        name = self.key_path(key_name)
        if not isinstance(ciphertext, bytes) or not ciphertext:
            raise CryptoError()
        if not isinstance(associated_data, bytes) or not associated_data:
            raise CryptoError()
        with boundary("kms.decrypt", crypto=True):
            response = self._client.decrypt(
                request={
                    "name": name,
                    "ciphertext": ciphertext,
                    "additional_authenticated_data": associated_data,
                    "ciphertext_crc32c": crc32c(ciphertext),
                    "additional_authenticated_data_crc32c": crc32c(associated_data),
                },
                **self._opts,
            )
        if "plaintext_crc32c" not in response or crc32c(response.plaintext) != (
            response.plaintext_crc32c
        ):
            raise UnavailableError("kms.decrypt: checksum verification failed in transit")
        return bytes(response.plaintext)

    def rotate(self, key_name: str) -> str:
        """Create a new version, wait until it is enabled, make it primary; return its id."""
        name = self.key_path(key_name)
        with boundary("kms.rotate"):
            version = self._client.create_crypto_key_version(
                parent=name, crypto_key_version={}, **self._opts
            )
            self._await_enabled(version)
            version_id = version.name.rsplit("/", 1)[-1]
            self._client.update_crypto_key_primary_version(
                name=name, crypto_key_version_id=version_id, **self._opts
            )
        return version_id

    def primary_version(self, key_name: str) -> str:
        """The id (last path segment) of the key's primary version."""
        with boundary("kms.primary_version"):
            key = self._client.get_crypto_key(name=self.key_path(key_name), **self._opts)
        return key.primary.name.rsplit("/", 1)[-1]

    def _await_enabled(self, version: kms.CryptoKeyVersion) -> None:
        """Poll a ``PENDING_GENERATION`` version (HSM keys) until enabled, within the deadline."""
        give_up = time.monotonic() + self._deadline
        delay = 0.1
        while version.state == _PENDING:
            if time.monotonic() >= give_up:
                raise UnavailableError("kms.rotate: new key version is still being generated")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            version = self._client.get_crypto_key_version(name=version.name, **self._opts)
        if version.state != _ENABLED:
            raise UnavailableError("kms.rotate: new key version is not enabled")
