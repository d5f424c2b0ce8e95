"""KeyService contract: one suite, run against the local KMS and Cloud KMS (REST, real HTTP fake).

The ``gcp-rest`` variant drives the official ``google.cloud.kms`` client with
``transport="rest"`` against :mod:`tests.fakes.kms_rest`, which really encrypts, so tamper
tests mean something on both adapters.
"""

from __future__ import annotations

import base64
import copy
import inspect
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.cloud import kms

from shared.adapters.embedded.local_kms import LocalKeyService, ciphertext_version
from shared.adapters.gcp.cloud_kms import CloudKeyService
from shared.errors import Conflict, CryptoError, InvalidInput, NotFound, UnavailableError
from shared.ports import KeyService
from tests.contract._gcp_rest import harness_fixture, rest_client
from tests.fakes.kms_rest import FakeKms

KEY, OTHER = "vault-github", "vault-gitlab"
AD = b"keyway/token/tenant-1/conn-7"
PLAINTEXT = b"data-key:\x00\x01\x02\xfe\xff secret-bytes-0123456789"
OPAQUE = "cryptographic operation failed"


@dataclass
class Harness:
    """One adapter under test, plus how to see a ciphertext's version and cause an outage."""

    keys: KeyService
    version_of: Callable[[bytes], str]
    outage: Callable[[], KeyService]
    root: Path
    fake: FakeKms | None = None


def _embedded(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    key_dir = tmp_path / "keys"

    def outage() -> KeyService:
        """A fresh service (nothing cached) over a key directory it cannot read."""
        key_dir.chmod(0)
        request.addfinalizer(lambda: key_dir.exists() and key_dir.chmod(0o700))
        if os.access(key_dir, os.R_OK | os.X_OK):  # root ignores permission bits:
            key_dir.chmod(0o700)  # put a file where the directory was instead
            key_dir.rename(tmp_path / "keys.moved")
            key_dir.write_bytes(b"not a directory")
        return LocalKeyService(key_dir)

    return Harness(LocalKeyService(key_dir), ciphertext_version, outage, tmp_path)


def _gcp_rest(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    fake = FakeKms()
    client = rest_client(kms.KeyManagementServiceClient, fake, request)
    service = CloudKeyService("kw-test", "global", "keyway", client=client)

    def outage() -> KeyService:
        fake.unavailable = True
        return CloudKeyService("kw-test", "global", "keyway", client=client, deadline=0.3)

    return Harness(service, fake.version_of, outage, tmp_path, fake)


harness = harness_fixture(_embedded, _gcp_rest)


@pytest.fixture
def keys(harness: Harness) -> KeyService:
    harness.keys.ensure_key(KEY)
    return harness.keys


def _crypto_failure(keys: KeyService, ciphertext: bytes, ad: bytes = AD, key: str = KEY) -> str:
    with pytest.raises(CryptoError) as info:
        keys.decrypt(key, ciphertext, ad)
    assert type(info.value) is CryptoError
    return str(info.value)


# -- contract ---------------------------------------------------------------------------------
def test_implements_the_port(harness: Harness) -> None:
    assert isinstance(harness.keys, KeyService)


def test_round_trip(keys: KeyService) -> None:
    ciphertext = keys.encrypt(KEY, PLAINTEXT, AD)
    assert PLAINTEXT not in ciphertext
    assert keys.decrypt(KEY, ciphertext, AD) == PLAINTEXT


def test_largest_plaintext_round_trips_and_limits_are_enforced(keys: KeyService) -> None:
    big = os.urandom(64 * 1024)
    assert keys.decrypt(KEY, keys.encrypt(KEY, big, AD), AD) == big
    for plaintext, ad in ((b"", AD), (big + b"x", AD), (PLAINTEXT, b""), (PLAINTEXT, big + b"x")):
        with pytest.raises(InvalidInput):
            keys.encrypt(KEY, plaintext, ad)


def test_ensure_key_is_idempotent(keys: KeyService) -> None:
    first = keys.primary_version(KEY)
    keys.ensure_key(KEY)
    assert keys.primary_version(KEY) == first


def test_associated_data_is_mandatory_and_binding(keys: KeyService) -> None:
    for method in (type(keys).encrypt, type(keys).decrypt):
        param = inspect.signature(method).parameters["associated_data"]
        assert param.default is inspect.Parameter.empty
    ciphertext = keys.encrypt(KEY, PLAINTEXT, AD)
    for wrong in (b"keyway/token/tenant-2/conn-7", AD + b"\x00", AD[:-1], b"", b"x"):
        assert _crypto_failure(keys, ciphertext, ad=wrong) == OPAQUE


def test_any_tampering_fails_with_one_opaque_error(keys: KeyService) -> None:
    ciphertext = keys.encrypt(KEY, PLAINTEXT, AD)
    bad = [ciphertext[:i] + bytes([ciphertext[i] ^ (1 << (i % 8))]) + ciphertext[i + 1 :]
           for i in range(len(ciphertext))]
    bad += [ciphertext[:n] for n in range(len(ciphertext))]  # every truncation, down to b""
    bad += [ciphertext + b"\x00", os.urandom(len(ciphertext)), b"\x01", b"garbage" * 20]
    bad += [bytes(len(ciphertext)), b"\xff" * 300]
    messages = {_crypto_failure(keys, blob) for blob in bad}
    assert messages == {OPAQUE}


def test_ciphertext_is_bound_to_its_key(keys: KeyService) -> None:
    keys.ensure_key(OTHER)
    ciphertext = keys.encrypt(KEY, PLAINTEXT, AD)
    assert _crypto_failure(keys, ciphertext, key=OTHER) == OPAQUE
    assert keys.decrypt(OTHER, keys.encrypt(OTHER, PLAINTEXT, AD), AD) == PLAINTEXT


def test_encryption_is_randomised(keys: KeyService) -> None:
    assert keys.encrypt(KEY, PLAINTEXT, AD) != keys.encrypt(KEY, PLAINTEXT, AD)


def test_rotate_adds_a_new_primary_and_old_ciphertexts_still_decrypt(
    keys: KeyService, harness: Harness
) -> None:
    old = keys.primary_version(KEY)
    before = keys.encrypt(KEY, PLAINTEXT, AD)
    new = keys.rotate(KEY)
    assert new != old
    assert keys.primary_version(KEY) == new
    after = keys.encrypt(KEY, PLAINTEXT, AD)
    assert (harness.version_of(before), harness.version_of(after)) == (old, new)
    assert keys.decrypt(KEY, before, AD) == keys.decrypt(KEY, after, AD) == PLAINTEXT
    newer = keys.rotate(KEY)
    assert newer not in (old, new) and keys.primary_version(KEY) == newer


def test_missing_key(harness: Harness) -> None:
    keys = harness.keys
    for call in (keys.primary_version, keys.rotate, lambda k: keys.encrypt(k, PLAINTEXT, AD)):
        with pytest.raises(NotFound):
            call("never-created")
    keys.ensure_key(KEY)
    assert _crypto_failure(keys, keys.encrypt(KEY, PLAINTEXT, AD), key="never-created") == OPAQUE


@pytest.mark.parametrize("name", ["", "Vault", "vault_github", "a" * 64, "../x", "a/b", "é"])
def test_invalid_key_names(harness: Harness, name: str) -> None:
    with pytest.raises(InvalidInput):
        harness.keys.ensure_key(name)
    with pytest.raises(InvalidInput):
        harness.keys.encrypt(name, PLAINTEXT, AD)


def test_outage_is_unavailable_and_nothing_is_written_in_clear(
    keys: KeyService, harness: Harness
) -> None:
    ciphertext = keys.encrypt(KEY, PLAINTEXT, AD)
    down = harness.outage()
    secret = b"refresh-token-that-must-not-leak"
    calls: list[Callable[[], object]] = [
        lambda: down.encrypt(KEY, secret, AD),
        lambda: down.decrypt(KEY, ciphertext, AD),  # an outage is never a CryptoError
        lambda: down.ensure_key(OTHER),
        lambda: down.rotate(KEY),
        lambda: down.primary_version(KEY),
    ]
    for call in calls:
        with pytest.raises(UnavailableError) as info:
            call()
        assert info.value.retryable and secret.decode() not in str(info.value)
    encoded = (secret, base64.b64encode(secret), secret.hex().encode())
    for path in harness.root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(e in content for e in encoded), path


# -- embedded only ----------------------------------------------------------------------------
@pytest.fixture
def local(tmp_path: Path) -> LocalKeyService:
    service = LocalKeyService(tmp_path / "keys")
    service.ensure_key(KEY)
    return service


def test_key_files_are_private(local: LocalKeyService, tmp_path: Path) -> None:
    local.rotate(KEY)
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    files = list((tmp_path / "keys").iterdir())
    assert [f.name for f in files] == [f"{KEY}.json"]  # no temp files left behind
    assert files[0].stat().st_mode & 0o777 == 0o600
    record = json.loads(files[0].read_text())
    assert record["primary"] == "2" and set(record["versions"]) == {"1", "2"}
    assert all(len(base64.b64decode(v["key_b64"])) == 32 for v in record["versions"].values())


def test_ciphertext_layout(local: LocalKeyService) -> None:
    ciphertext = local.encrypt(KEY, PLAINTEXT, AD)
    assert ciphertext[:3] == b"\x01\x011"
    assert len(ciphertext) == 3 + 12 + len(PLAINTEXT) + 16
    assert ciphertext_version(ciphertext) == "1"


@pytest.mark.parametrize(
    "header", [b"\x01\xff1", b"\x01\x00", b"\x01\x02x1", b"\x02\x011", b"\x01\x11" + b"1" * 17]
)
def test_header_is_parsed_with_bounds_checks(local: LocalKeyService, header: bytes) -> None:
    body = local.encrypt(KEY, PLAINTEXT, AD)[3:]
    assert _crypto_failure(local, header + body) == OPAQUE
    with pytest.raises(CryptoError):
        ciphertext_version(header + body[:5])


def test_key_material_is_not_shown_or_pickled(local: LocalKeyService, tmp_path: Path) -> None:
    local.encrypt(KEY, PLAINTEXT, AD)  # master key now cached
    record = json.loads((tmp_path / "keys" / f"{KEY}.json").read_text())
    material = record["versions"]["1"]["key_b64"]
    assert repr(local) == f"LocalKeyService(key_dir={str(tmp_path / 'keys')!r})"
    assert material not in repr(local) and material not in str(local)
    for attempt in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError):
            attempt(local)


def test_disable_version_retires_it(local: LocalKeyService) -> None:
    old = local.encrypt(KEY, PLAINTEXT, AD)
    with pytest.raises(Conflict):
        local.disable_version(KEY, "1")  # still primary
    local.rotate(KEY)
    local.disable_version(KEY, "1")
    assert _crypto_failure(local, old) == OPAQUE
    assert local.decrypt(KEY, local.encrypt(KEY, PLAINTEXT, AD), AD) == PLAINTEXT
    with pytest.raises(NotFound):
        local.disable_version(KEY, "9")


def test_master_keys_are_cached_and_new_versions_picked_up(
    local: LocalKeyService, tmp_path: Path
) -> None:
    ciphertext = local.encrypt(KEY, PLAINTEXT, AD)  # caches version 1 only
    other = LocalKeyService(tmp_path / "keys")  # another process rotates
    other.rotate(KEY)
    assert local.decrypt(KEY, other.encrypt(KEY, PLAINTEXT, AD), AD) == PLAINTEXT
    (tmp_path / "keys").rename(tmp_path / "elsewhere")
    assert local.decrypt(KEY, ciphertext, AD) == PLAINTEXT  # served from memory


def test_corrupt_key_file_is_unavailable(local: LocalKeyService, tmp_path: Path) -> None:
    (tmp_path / "keys" / f"{KEY}.json").write_text('{"format": 1, "versions": {"1": {}}}')
    with pytest.raises(UnavailableError):
        LocalKeyService(tmp_path / "keys").encrypt(KEY, PLAINTEXT, AD)


# -- gcp-rest only ----------------------------------------------------------------------------
@pytest.fixture
def gcp(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    built = _gcp_rest(tmp_path, request)
    built.keys.ensure_key(KEY)
    return built


def test_gcp_rotate_waits_for_key_generation(gcp: Harness) -> None:
    assert gcp.fake is not None
    gcp.fake.pending_reads = 2
    assert gcp.keys.rotate(KEY) == "2"
    assert gcp.keys.primary_version(KEY) == "2"
    assert sum(":updatePrimaryVersion" in c for c in gcp.fake.calls) == 1


def test_gcp_disabled_version_is_a_crypto_error(gcp: Harness) -> None:
    assert gcp.fake is not None
    old = gcp.keys.encrypt(KEY, PLAINTEXT, AD)
    gcp.keys.rotate(KEY)
    gcp.fake.disable_version(gcp.keys.key_path(KEY), "1")  # type: ignore[attr-defined]
    assert _crypto_failure(gcp.keys, old) == OPAQUE


def test_gcp_corrupted_responses_are_caught_by_crc32c(gcp: Harness) -> None:
    assert gcp.fake is not None
    ciphertext = gcp.keys.encrypt(KEY, PLAINTEXT, AD)
    gcp.fake.corrupt_responses = True
    with pytest.raises(UnavailableError):
        gcp.keys.encrypt(KEY, PLAINTEXT, AD)
    with pytest.raises(UnavailableError):
        gcp.keys.decrypt(KEY, ciphertext, AD)


def test_gcp_unreachable_service_is_unavailable_not_a_crypto_error(gcp: Harness) -> None:
    assert gcp.fake is not None
    ciphertext = gcp.keys.encrypt(KEY, PLAINTEXT, AD)
    gcp.fake.stop()  # connection refused, kept-alive connections cut
    with pytest.raises(UnavailableError):
        gcp.keys.decrypt(KEY, ciphertext, AD)
