from pathlib import Path

import pytest

from shared.config import Config
from shared.errors import ConfigError


def test_defaults_are_the_embedded_local_stack(tmp_path: Path) -> None:
    config = Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})
    assert config.backend == "embedded"
    assert config.local_mode is True
    assert config.port == 8080
    assert config.vault_database == "vault"
    assert config.business_database == "(default)"
    assert config.secrets_file == tmp_path / "secrets.json"


def test_state_dir_defaults_to_dot_keyway() -> None:
    assert Config.from_env({}).state_dir == Path(".keyway").resolve()


GCP = {"KEYWAY_BACKEND": "gcp", "KEYWAY_PROJECT": "prod-project",
       "KEYWAY_PUBLIC_URL": "https://keyway.example.com",
       "KEYWAY_AUTH_ISSUER": "https://example.eu.auth0.com/"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KEYWAY_BACKEND": "aws"}, "KEYWAY_BACKEND"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"KEYWAY_BACKEND": "emulator"}, "FIRESTORE_EMULATOR_HOST"),
        ({"KEYWAY_BACKEND": "emulator", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"},
         "PUBSUB_EMULATOR_HOST"),
        ({"KEYWAY_BACKEND": "gcp"}, "KEYWAY_PROJECT"),
        ({**GCP, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}, "FIRESTORE_EMULATOR_HOST"),
        ({"KEYWAY_PROJECT": "Bad_Project"}, "KEYWAY_PROJECT"),
        ({"KEYWAY_VAULT_DATABASE": "Vault DB"}, "KEYWAY_VAULT_DATABASE"),
        ({"KEYWAY_LOG_LEVEL": "LOUD"}, "KEYWAY_LOG_LEVEL"),
        ({"KEYWAY_SQLITE_SYNCHRONOUS": "off"}, "KEYWAY_SQLITE_SYNCHRONOUS"),
        ({"KEYWAY_KMS_KEY_RING": "ring/../x"}, "KEYWAY_KMS_KEY_RING"),
        ({"KEYWAY_TICK_SECONDS": "0"}, "KEYWAY_TICK_SECONDS"),
        ({**GCP, "KEYWAY_PUBLIC_URL": ""}, "KEYWAY_PUBLIC_URL"),
        ({**GCP, "KEYWAY_PUBLIC_URL": "http://keyway.example.com"}, "KEYWAY_PUBLIC_URL"),
        ({**GCP, "KEYWAY_AUTH_ISSUER": ""}, "KEYWAY_AUTH_ISSUER"),
        ({**GCP, "KEYWAY_FRONTEND_URL": "javascript:alert(1)"}, "KEYWAY_FRONTEND_URL"),
        ({"KEYWAY_FRONTEND_URL": "ftp://files"}, "KEYWAY_FRONTEND_URL"),
        ({"KEYWAY_SYNC_LEASE_SECONDS": "60"}, "KEYWAY_SYNC_LEASE_SECONDS"),  # = the budget
        ({"KEYWAY_SYNC_RETRY_SECONDS": "0"}, "KEYWAY_SYNC_RETRY_SECONDS"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env(env)
    assert named in str(caught.value)


def test_gcp_backend_is_not_local_mode() -> None:
    config = Config.from_env(GCP)
    assert config.local_mode is False
    assert config.project == "prod-project"


def test_emulator_backend_accepts_host_port() -> None:
    config = Config.from_env({"KEYWAY_BACKEND": "emulator",
                              "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8085",
                              "PUBSUB_EMULATOR_HOST": "localhost:8086"})
    assert config.firestore_emulator_host == "127.0.0.1:8085"
    assert config.local_mode is True


def test_the_issuer_is_kept_exactly_as_configured() -> None:
    assert Config.from_env(GCP).auth_issuer == "https://example.eu.auth0.com/"


def test_local_urls_default_to_the_local_stack() -> None:
    config = Config.from_env({"PORT": "9000"})
    assert config.public_url == "http://127.0.0.1:9000"
    assert config.auth_issuer == "http://127.0.0.1:9000/api/local-issuer"
    assert config.frontend_url.startswith("http://127.0.0.1:9000/")


def test_the_sync_lease_outlasts_the_time_budget_unless_set() -> None:
    assert Config.from_env({}).sync_lease_seconds == 300
    assert Config.from_env({"KEYWAY_SYNC_BUDGET_SECONDS": "600"}).sync_lease_seconds == 1200
    assert Config.from_env({"KEYWAY_SYNC_BUDGET_SECONDS": "5",
                            "KEYWAY_SYNC_LEASE_SECONDS": "8"}).sync_lease_seconds == 8
