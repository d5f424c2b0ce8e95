"""Secrets from the environment and a local JSON file: the embedded SecretSource.

``access(name)`` (version ``"latest"``) first looks for the environment variable
``KEYWAY_SECRET_<NAME>``, the name upper-cased with ``-`` turned into ``_`` (so
``KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET`` answers for ``github-webhook-secret``); an empty
variable counts as unset. Otherwise, and for any explicit version, it reads the secrets file
(mode 0600)::

    {"github-webhook-secret": {"versions": [
        {"id": "1", "value_b64": "...", "enabled": true},
        {"id": "2", "value_b64": "...", "enabled": true}]}}

``add_version`` appends ``"1"``, ``"2"``, ... and ``delete`` drops a secret, each under an
exclusive ``flock`` on the file's directory, replacing the file atomically (temp file created
0600, fsync, ``os.replace``).
Error messages name the secret and never contain a value.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NoReturn

from shared.adapters.embedded._files import Unpicklable, locked_dir, write_private
from shared.errors import ConfigError, InvalidInput, NotFound, UnavailableError

ENV_PREFIX = "KEYWAY_SECRET_"
MAX_VALUE = 64 * 1024  # Secret Manager's payload limit, kept here too
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,255}")
_VERSION = re.compile(r"latest|[1-9][0-9]{0,17}")


def validate_secret_name(name: str) -> str:
    """Return ``name`` if it matches ``^[a-zA-Z0-9_-]{1,255}$``, else raise ``InvalidInput``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("secret name must be 1-255 of letters, digits, '_' or '-'")
    return name


def validate_version(version: str) -> str:
    """Return ``version`` if it is ``"latest"`` or a positive integer id, else ``InvalidInput``."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise InvalidInput("secret version must be 'latest' or a positive integer")
    return version


def validate_value(value: bytes) -> bytes:
    """Return ``value`` if it is 1 byte to 64 KiB of bytes, else ``InvalidInput``."""
    if not isinstance(value, bytes) or not value or len(value) > MAX_VALUE:
        raise InvalidInput("secret value must be 1 byte to 64 KiB of bytes")
    return value


def env_var_name(name: str) -> str:
    """The environment variable that overrides secret ``name``."""
    return ENV_PREFIX + name.upper().replace("-", "_")


class LocalSecretSource(Unpicklable):
    """SecretSource over the environment and ``secrets_file``; see the module docstring."""

    _refusal = "reads secret values and cannot be pickled"

    def __init__(self, secrets_file: Path, env: Mapping[str, str] | None = None) -> None:
        self._file = Path(secrets_file)
        self._env = env

    def __repr__(self) -> str:
        return f"LocalSecretSource(secrets_file={str(self._file)!r})"

    def access(self, name: str, version: str = "latest") -> bytes:
        """The value of ``name`` at ``version``; missing or disabled → ``NotFound``."""
        validate_secret_name(name)
        validate_version(version)
        if version == "latest":
            env = os.environ if self._env is None else self._env
            override = env.get(env_var_name(name))
            if override:
                return override.encode("utf-8")
        enabled = _enabled_versions(self._load(), name)
        chosen = max(enabled, default=None) if version == "latest" else int(version)
        if chosen not in enabled:
            _missing(name, version)
        return enabled[chosen]

    def add_version(self, name: str, value: bytes) -> str:
        """Append a new enabled version of ``name`` (creating it) and return its id."""
        validate_secret_name(name)
        validate_value(value)
        with self._locked_dir():
            data = self._load()
            _enabled_versions(data, name)  # refuse to extend a corrupt entry
            versions = data.setdefault(name, {}).setdefault("versions", [])
            new_id = str(max((int(v["id"]) for v in versions), default=0) + 1)
            value_b64 = base64.b64encode(value).decode("ascii")
            versions.append({"id": new_id, "value_b64": value_b64, "enabled": True})
            self._write(data)
        return new_id

    def delete(self, name: str) -> None:
        """Remove ``name`` and its versions from the file; ``NotFound`` if it has none there.
        An environment override is operator configuration and is left alone."""
        validate_secret_name(name)
        with self._locked_dir():
            data = self._load()
            if name not in data:
                raise NotFound(f"secret {name!r} does not exist")
            del data[name]
            self._write(data)

    def _load(self) -> dict[str, Any]:
        """The parsed secrets file (``{}`` if absent); unreadable → ``UnavailableError``."""
        try:
            raw = self._file.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise UnavailableError("secrets file is unreadable") from e
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConfigError("secrets file is not a JSON object of secrets")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        """Atomically replace the secrets file with a temp file created 0600."""
        write_private(self._file, json.dumps(data, sort_keys=True, indent=1).encode(),
                      "secrets file cannot be written")

    def _locked_dir(self) -> AbstractContextManager[None]:
        """Create the file's directory (0700) if needed and hold an exclusive lock on it."""
        return locked_dir(self._file.parent, "secrets directory is unusable")


def _enabled_versions(data: dict[str, Any], name: str) -> dict[int, bytes]:
    """``{version id: value}`` of the enabled versions of ``name``; malformed → ``ConfigError``."""
    try:
        entries = data.get(name, {}).get("versions", [])
        return {
            int(v["id"]): base64.b64decode(v["value_b64"], validate=True)
            for v in entries
            if v.get("enabled", True) is not False
        }
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"secrets file: secret {name!r} is malformed") from e


def _missing(name: str, version: str) -> NoReturn:
    if version == "latest":
        raise NotFound(f"secret {name!r} has no enabled version")
    raise NotFound(f"secret {name!r} has no enabled version {version!r}")
