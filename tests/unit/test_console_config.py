import pytest

from shared.config import Config
from shared.errors import ConfigError


def test_console_origins_default_to_keyways_own_origin():
    assert Config.from_env({"PORT": "8123"}).console_origins == ("http://127.0.0.1:8123",)


def test_console_origins_are_listed_space_separated():
    config = Config.from_env({"KEYWAY_CONSOLE_ORIGINS": "https://app.example http://127.0.0.1:3000"})
    assert config.console_origins == ("https://app.example", "http://127.0.0.1:3000")


@pytest.mark.parametrize("value", ["*", "https://app.example/path", "app.example",
                                   "https://app.example?x=1", "ftp://app.example"])
def test_a_console_origin_that_is_not_an_origin_is_refused_by_name(value):
    with pytest.raises(ConfigError, match="KEYWAY_CONSOLE_ORIGINS"):
        Config.from_env({"KEYWAY_CONSOLE_ORIGINS": value})


def test_gcp_takes_only_https_console_origins():
    env = {"KEYWAY_BACKEND": "gcp", "KEYWAY_PROJECT": "keyway-prod", "KEYWAY_PUBLIC_URL":
           "https://keyway.example", "KEYWAY_FRONTEND_URL": "https://app.example/done",
           "KEYWAY_AUTH_ISSUER": "https://issuer.example/", "KEYWAY_CONSOLE_ORIGINS":
           "http://app.example"}
    with pytest.raises(ConfigError, match="KEYWAY_CONSOLE_ORIGINS"):
        Config.from_env(env)
    env["KEYWAY_CONSOLE_ORIGINS"] = "https://app.example"
    assert Config.from_env(env).console_origins == ("https://app.example",)
