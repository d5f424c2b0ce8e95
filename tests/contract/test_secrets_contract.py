"""SecretSource contract: one suite, run against env + local file and Secret Manager (REST fake).

The ``gcp-rest`` variant drives the official ``google.cloud.secretmanager`` client with
``transport="rest"`` against :mod:`tests.fakes.secret_manager_rest` over real HTTP.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.cloud import secretmanager

from shared.adapters.embedded.local_secrets import LocalSecretSource
from shared.adapters.gcp.secret_manager import SecretManagerSource
from shared.errors import ConfigError, InvalidInput, NotFound, UnavailableError
from shared.ports import SecretSource
from tests.contract._gcp_rest import harness_fixture, rest_client
from tests.fakes.secret_manager_rest import FakeSecretManager

NAME = "github-webhook-secret"
V1, V2 = b"first-value-\x00\xff", b"second-value-\x01\xfe"


@dataclass
class Harness:
    """One adapter under test, plus how to disable a version and cause an outage."""

    secrets: SecretSource
    disable: Callable[[str, str], None]
    outage: Callable[[], SecretSource]
    fake: FakeSecretManager | None = None


def _embedded(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    path = tmp_path / "conf" / "secrets.json"

    def disable(name: str, version: str) -> None:
        data = json.loads(path.read_text())
        for entry in data[name]["versions"]:
            if entry["id"] == version:
                entry["enabled"] = False
        path.write_text(json.dumps(data))

    def outage() -> SecretSource:
        path.chmod(0)
        request.addfinalizer(lambda: path.chmod(0o600))
        if os.access(path, os.R_OK):  # root ignores permission bits:
            path.chmod(0o600)  # put a directory where the file was instead
            path.rename(tmp_path / "secrets.moved")
            path.mkdir()
        return LocalSecretSource(path, env={})

    return Harness(LocalSecretSource(path, env={}), disable, outage)


def _gcp_rest(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    fake = FakeSecretManager()
    client = rest_client(secretmanager.SecretManagerServiceClient, fake, request)

    def disable(name: str, version: str) -> None:
        fake.disable_version(f"projects/kw-test/secrets/{name}", version)

    def outage() -> SecretSource:
        fake.unavailable = True
        return SecretManagerSource("kw-test", client=client, deadline=0.3)

    return Harness(SecretManagerSource("kw-test", client=client), disable, outage, fake)


harness = harness_fixture(_embedded, _gcp_rest)


def _not_found(source: SecretSource, name: str, version: str, *values: bytes) -> None:
    with pytest.raises(NotFound) as info:
        source.access(name, version)
    message = str(info.value)
    assert repr(name) in message
    for value in values:
        assert value.decode("latin-1") not in message and repr(value) not in message


# -- contract ---------------------------------------------------------------------------------
def test_implements_the_port(harness: Harness) -> None:
    assert isinstance(harness.secrets, SecretSource)


def test_add_versions_then_access_latest_and_specific(harness: Harness) -> None:
    source = harness.secrets
    assert source.add_version(NAME, V1) == "1"
    assert source.access(NAME) == V1
    assert source.add_version(NAME, V2) == "2"
    assert source.access(NAME) == source.access(NAME, "latest") == V2
    assert source.access(NAME, "1") == V1
    assert source.access(NAME, "2") == V2


def test_secrets_are_independent(harness: Harness) -> None:
    harness.secrets.add_version(NAME, V1)
    harness.secrets.add_version("jira_client-secret", V2)
    assert harness.secrets.access(NAME) == V1
    assert harness.secrets.access("jira_client-secret") == V2


def test_missing_secret_or_version_is_not_found_naming_only_the_secret(harness: Harness) -> None:
    _not_found(harness.secrets, "no-such-secret", "latest")
    _not_found(harness.secrets, "no-such-secret", "1")
    harness.secrets.add_version(NAME, V1)
    harness.secrets.add_version(NAME, V2)
    _not_found(harness.secrets, NAME, "3", V1, V2)


def test_disabled_versions_are_skipped_and_not_found(harness: Harness) -> None:
    harness.secrets.add_version(NAME, V1)
    harness.secrets.add_version(NAME, V2)
    harness.disable(NAME, "2")
    assert harness.secrets.access(NAME) == V1
    _not_found(harness.secrets, NAME, "2", V1, V2)
    harness.disable(NAME, "1")
    _not_found(harness.secrets, NAME, "latest", V1, V2)


@pytest.mark.parametrize("name", ["", "a" * 256, "has space", "a/b", "../x", "é", "a:b"])
def test_invalid_names(harness: Harness, name: str) -> None:
    with pytest.raises(InvalidInput):
        harness.secrets.access(name)
    with pytest.raises(InvalidInput):
        harness.secrets.add_version(name, V1)


@pytest.mark.parametrize("version", ["", "0", "-1", "abc", "1.0", "latest/x", "01"])
def test_invalid_versions(harness: Harness, version: str) -> None:
    with pytest.raises(InvalidInput):
        harness.secrets.access(NAME, version)


def test_value_limits(harness: Harness) -> None:
    biggest = os.urandom(64 * 1024)
    harness.secrets.add_version(NAME, biggest)
    assert harness.secrets.access(NAME) == biggest
    for value in (b"", biggest + b"x"):
        with pytest.raises(InvalidInput):
            harness.secrets.add_version(NAME, value)


def test_delete_removes_the_secret_and_every_version(harness: Harness) -> None:
    source = harness.secrets
    source.add_version(NAME, V1)
    source.add_version(NAME, V2)
    source.add_version("webhook-secret-c-other", V1)
    source.delete(NAME)
    for version in ("latest", "1", "2"):
        _not_found(source, NAME, version, V1, V2)
    assert source.access("webhook-secret-c-other") == V1  # only the named secret goes


def test_deleting_a_missing_secret_is_not_found_naming_it(harness: Harness) -> None:
    with pytest.raises(NotFound) as info:
        harness.secrets.delete("webhook-secret-c-never")
    assert "'webhook-secret-c-never'" in str(info.value)
    harness.secrets.add_version(NAME, V1)
    harness.secrets.delete(NAME)
    with pytest.raises(NotFound):
        harness.secrets.delete(NAME)  # a second delete finds nothing


def test_a_deleted_secret_can_be_created_again_from_version_one(harness: Harness) -> None:
    harness.secrets.add_version(NAME, V1)
    harness.secrets.add_version(NAME, V1)
    harness.secrets.delete(NAME)
    assert harness.secrets.add_version(NAME, V2) == "1"
    assert harness.secrets.access(NAME) == V2
    _not_found(harness.secrets, NAME, "2", V1, V2)


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a:b"])
def test_delete_refuses_invalid_names(harness: Harness, name: str) -> None:
    with pytest.raises(InvalidInput):
        harness.secrets.delete(name)


def test_outage_is_unavailable(harness: Harness) -> None:
    harness.secrets.add_version(NAME, V1)
    down = harness.outage()
    for call in (lambda: down.access(NAME), lambda: down.add_version(NAME, V2),
                 lambda: down.delete(NAME)):
        with pytest.raises(UnavailableError) as info:
            call()
        assert info.value.retryable and "value" not in str(info.value)


# -- embedded only ----------------------------------------------------------------------------
def test_environment_overrides_latest(tmp_path: Path) -> None:
    env = {"KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET": "from-env", "KEYWAY_SECRET_ONLY_ENV": "e"}
    source = LocalSecretSource(tmp_path / "secrets.json", env=env)
    source.add_version(NAME, V1)
    assert source.access(NAME) == b"from-env"
    assert source.access(NAME, "1") == V1  # explicit versions come from the file
    assert source.access("only-env") == b"e"
    assert LocalSecretSource(tmp_path / "secrets.json", env={}).access(NAME) == V1


def test_environment_defaults_to_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET", "from-os")
    assert LocalSecretSource(tmp_path / "secrets.json").access(NAME) == b"from-os"
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET", "")  # empty counts as unset
    _not_found(LocalSecretSource(tmp_path / "secrets.json"), NAME, "latest")


def test_secrets_file_is_private_and_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "secrets.json"
    source = LocalSecretSource(path, env={})
    source.add_version(NAME, V1)
    source.add_version(NAME, V2)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]
    versions = json.loads(path.read_text())[NAME]["versions"]
    assert [(v["id"], v["enabled"]) for v in versions] == [("1", True), ("2", True)]


def test_delete_leaves_an_environment_override_alone(tmp_path: Path) -> None:
    source = LocalSecretSource(tmp_path / "secrets.json",
                               env={"KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET": "from-env"})
    source.add_version(NAME, V1)
    source.delete(NAME)
    assert source.access(NAME) == b"from-env"  # operator configuration, not a stored secret
    _not_found(source, NAME, "1")


def test_values_are_not_shown_or_pickled(tmp_path: Path) -> None:
    source = LocalSecretSource(tmp_path / "secrets.json", env={"KEYWAY_SECRET_X": "env-value"})
    source.add_version(NAME, V1)
    assert repr(source) == f"LocalSecretSource(secrets_file={str(tmp_path / 'secrets.json')!r})"
    assert "env-value" not in repr(source)
    for attempt in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError):
            attempt(source)


def test_corrupt_secrets_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("[not an object")
    with pytest.raises(ConfigError):
        LocalSecretSource(path, env={}).access(NAME)
    path.write_text(json.dumps({NAME: {"versions": [{"id": "1"}]}}))
    with pytest.raises(ConfigError):
        LocalSecretSource(path, env={}).access(NAME)


# -- gcp-rest only ----------------------------------------------------------------------------
@pytest.fixture
def gcp(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _gcp_rest(tmp_path, request)


def test_gcp_corrupted_payload_is_caught_by_crc32c(gcp: Harness) -> None:
    assert gcp.fake is not None
    gcp.secrets.add_version(NAME, V1)
    gcp.fake.corrupt_responses = True
    with pytest.raises(UnavailableError):
        gcp.secrets.access(NAME)


def test_gcp_creates_the_secret_once_with_automatic_replication(gcp: Harness) -> None:
    assert gcp.fake is not None
    gcp.secrets.add_version(NAME, V1)
    gcp.secrets.add_version(NAME, V2)  # the second create answers 409 ALREADY_EXISTS
    secret = gcp.fake.secrets[f"projects/kw-test/secrets/{NAME}"]
    assert secret["replication"] == {"automatic": {}}
    assert sorted(secret["versions"]) == ["1", "2"]


def test_gcp_latest_falls_back_when_the_newest_version_is_disabled(gcp: Harness) -> None:
    assert gcp.fake is not None
    gcp.secrets.add_version(NAME, V1)
    gcp.secrets.add_version(NAME, V2)
    gcp.disable(NAME, "2")  # Secret Manager's own "latest" alias now answers 400
    assert gcp.secrets.access(NAME) == V1
    assert f"GET /v1/projects/kw-test/secrets/{NAME}/versions" in gcp.fake.calls


def test_gcp_unreachable_service_is_unavailable(gcp: Harness) -> None:
    assert gcp.fake is not None
    gcp.secrets.add_version(NAME, V1)
    gcp.fake.stop()
    with pytest.raises(UnavailableError):
        gcp.secrets.access(NAME)
