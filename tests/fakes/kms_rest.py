"""A fake Cloud KMS v1 REST server: the key-ring, crypto-key and encrypt/decrypt subset.

It really encrypts: each key version has its own random AES-256 key and ciphertexts are
``0x01 | len(version) | version | nonce(12) | AES-GCM(plaintext) + tag``, with the key name,
the version and the request's ``additionalAuthenticatedData`` bound as associated data. So a
flipped bit, a wrong AAD or another key's ciphertext is refused with 400 INVALID_ARGUMENT,
as Cloud KMS does. CRC32C fields are checked and the ``verified*`` flags set.

Test knobs: ``unavailable`` (503 everything), ``pending_reads`` (a new version stays
``PENDING_GENERATION`` for that many reads), ``corrupt_responses`` (flip a bit of the
returned ciphertext/plaintext without fixing its checksum).
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests import fakes
from tests.fakes import FakeGoogleServer, Json

_ID = r"[^/:]+"
_LOCATION = rf"projects/{_ID}/locations/{_ID}"
_RING = rf"{_LOCATION}/keyRings/{_ID}"
_KEY = rf"{_RING}/cryptoKeys/{_ID}"
_KEY_ID = re.compile(r"[a-zA-Z0-9_-]{1,63}")
_MAX = 64 * 1024
_BAD_CIPHERTEXT = "Decryption failed: the ciphertext is invalid."


def _aad(key: str, version: str, aad: bytes) -> bytes:
    parts = (b"fake-kms", key.encode(), version.encode(), aad)
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _aad_field(body: Json) -> bytes:
    return fakes.b64decode(body.get("additionalAuthenticatedData"),
                           "additional_authenticated_data")


class FakeKms(FakeGoogleServer):
    """In-memory key rings and symmetric keys behind the Cloud KMS REST paths."""

    def __init__(self) -> None:
        super().__init__()
        self.key_rings: dict[str, str] = {}
        self.keys: dict[str, Json] = {}
        self.pending_reads = 0

    # -- helpers for tests --------------------------------------------------------------------
    @staticmethod
    def version_of(ciphertext: bytes) -> str:
        """The version id a fake ciphertext names."""
        return ciphertext[2 : 2 + ciphertext[1]].decode("ascii")

    def disable_version(self, key: str, version: str) -> None:
        with self.lock:
            self.keys[key]["versions"][version]["state"] = "DISABLED"

    # -- JSON shapes --------------------------------------------------------------------------
    def _version_json(self, key: str, vid: str) -> Json:
        entry = self.keys[key]["versions"][vid]
        state = entry["state"]
        if entry["pending"] > 0:
            state = "PENDING_GENERATION"
        return {"name": f"{key}/cryptoKeyVersions/{vid}", "state": state,
                "algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION", "protectionLevel": "SOFTWARE",
                "createTime": entry["created"]}

    def _key_json(self, key: str) -> Json:
        record = self.keys[key]
        return {"name": key, "purpose": "ENCRYPT_DECRYPT", "createTime": record["created"],
                "primary": self._version_json(key, record["primary"]),
                "versionTemplate": {"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION",
                                    "protectionLevel": "SOFTWARE"}}

    def _key(self, key: str) -> Json:
        if key not in self.keys:
            raise fakes.not_found(f"{key} not found.")
        return self.keys[key]

    def _add_version(self, key: str) -> str:
        versions = self.keys[key]["versions"]
        vid = str(len(versions) + 1)
        versions[vid] = {"secret": AESGCM.generate_key(bit_length=256), "state": "ENABLED",
                         "created": fakes.timestamp(), "pending": self.pending_reads}
        return vid

    # -- routes -------------------------------------------------------------------------------
    def create_key_ring(self, query: Json, body: Json, parent: str) -> Json:
        ring_id = query.get("keyRingId", "")
        if not _KEY_ID.fullmatch(ring_id):
            raise fakes.invalid_argument("Invalid key ring id.")
        name = f"{parent}/keyRings/{ring_id}"
        if name in self.key_rings:
            raise fakes.already_exists(f"KeyRing {name} already exists.")
        self.key_rings[name] = fakes.timestamp()
        return {"name": name, "createTime": self.key_rings[name]}

    def create_crypto_key(self, query: Json, body: Json, parent: str) -> Json:
        key_id = query.get("cryptoKeyId", "")
        if not _KEY_ID.fullmatch(key_id):
            raise fakes.invalid_argument("Invalid crypto key id.")
        if parent not in self.key_rings:
            raise fakes.not_found(f"KeyRing {parent} not found.")
        if body.get("purpose") not in (1, "ENCRYPT_DECRYPT"):
            raise fakes.invalid_argument("This fake supports only purpose ENCRYPT_DECRYPT.")
        name = f"{parent}/cryptoKeys/{key_id}"
        if name in self.keys:
            raise fakes.already_exists(f"CryptoKey {name} already exists.")
        self.keys[name] = {"versions": {}, "primary": "1", "created": fakes.timestamp()}
        pending, self.pending_reads = self.pending_reads, 0  # the first version is immediate
        self._add_version(name)
        self.pending_reads = pending
        return self._key_json(name)

    def get_crypto_key(self, query: Json, body: Json, name: str) -> Json:
        self._key(name)
        return self._key_json(name)

    def create_version(self, query: Json, body: Json, parent: str) -> Json:
        self._key(parent)
        return self._version_json(parent, self._add_version(parent))

    def get_version(self, query: Json, body: Json, name: str, vid: str) -> Json:
        entry = self._key(name)["versions"].get(vid)
        if entry is None:
            raise fakes.not_found(f"{name}/cryptoKeyVersions/{vid} not found.")
        answer = self._version_json(name, vid)
        entry["pending"] = max(0, entry["pending"] - 1)
        return answer

    def update_primary(self, query: Json, body: Json, name: str) -> Json:
        entry = self._key(name)["versions"].get(str(body.get("cryptoKeyVersionId", "")))
        if entry is None:
            raise fakes.not_found("CryptoKeyVersion not found.")
        if entry["state"] != "ENABLED" or entry["pending"] > 0:
            raise fakes.failed_precondition("The version is not enabled.")
        self.keys[name]["primary"] = str(body["cryptoKeyVersionId"])
        return self._key_json(name)

    def encrypt(self, query: Json, body: Json, name: str) -> Json:
        record = self._key(name)
        plaintext = fakes.b64decode(body.get("plaintext"), "plaintext")
        aad = _aad_field(body)
        if not plaintext or len(plaintext) > _MAX or len(aad) > _MAX:
            raise fakes.invalid_argument("plaintext must be 1 byte to 64 KiB; AAD at most 64 KiB.")
        verified_pt = fakes.check_crc(plaintext, body.get("plaintextCrc32c"), "plaintext_crc32c")
        verified_aad = fakes.check_crc(aad, body.get("additionalAuthenticatedDataCrc32c"),
                                       "additional_authenticated_data_crc32c")
        vid = record["primary"]
        entry = record["versions"][vid]
        if entry["state"] != "ENABLED":
            raise fakes.failed_precondition("The primary version is not enabled.")
        nonce = os.urandom(12)
        sealed = AESGCM(entry["secret"]).encrypt(nonce, plaintext, _aad(name, vid, aad))
        ciphertext = bytes([1, len(vid)]) + vid.encode() + nonce + sealed
        returned = self.returned(ciphertext)
        return {"name": f"{name}/cryptoKeyVersions/{vid}",
                "ciphertext": fakes.b64encode(returned),
                "ciphertextCrc32c": str(fakes.crc32c(ciphertext)),
                "verifiedPlaintextCrc32c": verified_pt,
                "verifiedAdditionalAuthenticatedDataCrc32c": verified_aad,
                "protectionLevel": "SOFTWARE"}

    def decrypt(self, query: Json, body: Json, name: str) -> Json:
        record = self._key(name)
        blob = fakes.b64decode(body.get("ciphertext"), "ciphertext")
        aad = _aad_field(body)
        fakes.check_crc(blob, body.get("ciphertextCrc32c"), "ciphertext_crc32c")
        fakes.check_crc(aad, body.get("additionalAuthenticatedDataCrc32c"),
                        "additional_authenticated_data_crc32c")
        plaintext, vid = self._open(name, record, blob, aad)
        returned = self.returned(plaintext)
        return {"plaintext": fakes.b64encode(returned),
                "plaintextCrc32c": str(fakes.crc32c(plaintext)),
                "usedPrimary": vid == record["primary"], "protectionLevel": "SOFTWARE"}

    def _open(self, name: str, record: Json, blob: bytes, aad: bytes) -> tuple[bytes, str]:
        if len(blob) < 2 or blob[0] != 1 or len(blob) < 2 + blob[1] + 12 + 16:
            raise fakes.invalid_argument(_BAD_CIPHERTEXT)
        vid = blob[2 : 2 + blob[1]].decode("ascii", errors="replace")
        entry = record["versions"].get(vid)
        if entry is None:
            raise fakes.invalid_argument(_BAD_CIPHERTEXT)
        if entry["state"] != "ENABLED":
            raise fakes.failed_precondition(f"{name}/cryptoKeyVersions/{vid} is not enabled.")
        start = 2 + blob[1]
        try:
            sealed = blob[start + 12 :]
            cipher = AESGCM(entry["secret"])
            return cipher.decrypt(blob[start : start + 12], sealed, _aad(name, vid, aad)), vid
        except InvalidTag as e:
            raise fakes.invalid_argument(_BAD_CIPHERTEXT) from e

    routes: Any = [
        ("POST", re.compile(rf"/v1/(?P<parent>{_LOCATION})/keyRings"), create_key_ring),
        ("POST", re.compile(rf"/v1/(?P<parent>{_RING})/cryptoKeys"), create_crypto_key),
        ("GET", re.compile(rf"/v1/(?P<name>{_KEY})"), get_crypto_key),
        ("POST", re.compile(rf"/v1/(?P<parent>{_KEY})/cryptoKeyVersions"), create_version),
        ("GET", re.compile(rf"/v1/(?P<name>{_KEY})/cryptoKeyVersions/(?P<vid>{_ID})"),
         get_version),
        ("POST", re.compile(rf"/v1/(?P<name>{_KEY}):updatePrimaryVersion"), update_primary),
        ("POST", re.compile(rf"/v1/(?P<name>{_KEY}):encrypt"), encrypt),
        ("POST", re.compile(rf"/v1/(?P<name>{_KEY}):decrypt"), decrypt),
    ]
