"""Channel keys: one per vault-P → fetch-P / act-P pair, nothing else, never shown or pickled."""

from __future__ import annotations

import pickle

import pytest

from keyway.firststart import ensure_local_state
from shared.bootstrap import build
from shared.config import Config
from shared.crypto import channels
from shared.crypto.channels import ALLOWED_CHANNELS, ChannelKeys
from shared.errors import CryptoError, NotFound, PolicyViolation
from shared.policy import PROVIDERS
from shared.ports import Ports


@pytest.fixture
def ports(tmp_path) -> Ports:
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))


def test_allowed_channels_are_exactly_vault_to_fetch_and_act_of_the_same_provider() -> None:
    expected = {(f"vault-{p}", f"{kind}-{p}") for p in PROVIDERS for kind in ("fetch", "act")}
    assert ALLOWED_CHANNELS == expected


def test_channel_secrets_are_named_after_both_ends() -> None:
    assert channels.secret_name("vault-github", "fetch-github") == (
        "channel-vault-github-to-fetch-github")


@pytest.mark.parametrize("sender, recipient", [
    ("vault-github", "fetch-gitlab"),
    ("api", "fetch-github"),
    ("vault-github", "act-gitlab"),
    ("fetch-github", "vault-github"),
    ("vault-github", "vault-github"),
    ("oauth-github", "fetch-github"),
    ("vault-github", "ingest"),
])
def test_pairs_outside_the_allowed_channels_are_refused(ports, sender, recipient) -> None:
    channels.ensure(ports.secrets)
    with pytest.raises(PolicyViolation):
        ChannelKeys(ports.secrets).key(sender, recipient)


def test_only_the_vault_of_a_provider_sends_to_its_recipients() -> None:
    assert channels.sender_for("fetch-github") == "vault-github"
    assert channels.sender_for("act-jira") == "vault-jira"
    with pytest.raises(PolicyViolation):
        channels.sender_for("api")


def test_ensure_creates_every_channel_key_once(ports) -> None:
    created = channels.ensure(ports.secrets)
    assert len(created) == 2 * len(PROVIDERS)
    assert set(created) == {channels.secret_name(s, r) for s, r in ALLOWED_CHANNELS}
    values = {ports.secrets.access(name) for name in created}
    assert len(values) == len(created) and all(len(v) == 32 for v in values)
    assert channels.ensure(ports.secrets) == []
    assert {ports.secrets.access(name) for name in created} == values


def test_first_start_creates_the_channel_keys_too(ports) -> None:
    created = ensure_local_state(ports)
    assert "channel-vault-github-to-fetch-github" in created
    assert "channel-vault-jira-to-act-jira" in created
    assert "github-webhook-secret" in created
    assert ensure_local_state(ports) == []


def test_key_reads_the_stored_secret_and_caches_it(ports) -> None:
    channels.ensure(ports.secrets)
    keys = ChannelKeys(ports.secrets)
    stored = ports.secrets.access("channel-vault-github-to-fetch-github")
    assert keys.key("vault-github", "fetch-github") == stored
    ports.secrets.add_version("channel-vault-github-to-fetch-github", b"\x01" * 32)
    assert keys.key("vault-github", "fetch-github") == stored  # cached for the process
    assert ChannelKeys(ports.secrets).key("vault-github", "fetch-github") == b"\x01" * 32


def test_a_missing_channel_key_is_not_found_and_named(ports) -> None:
    with pytest.raises(NotFound) as info:
        ChannelKeys(ports.secrets).key("vault-github", "act-github")
    assert "channel-vault-github-to-act-github" in str(info.value)


def test_a_channel_key_of_the_wrong_length_is_a_crypto_error(ports) -> None:
    ports.secrets.add_version("channel-vault-gitlab-to-fetch-gitlab", b"\x02" * 16)
    with pytest.raises(CryptoError):
        ChannelKeys(ports.secrets).key("vault-gitlab", "fetch-gitlab")


def test_channel_keys_never_show_or_pickle_their_keys(ports) -> None:
    channels.ensure(ports.secrets)
    keys = ChannelKeys(ports.secrets)
    key = keys.key("vault-github", "fetch-github")
    assert key.hex() not in repr(keys) and str(key) not in repr(keys)
    assert key.hex() not in str(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
