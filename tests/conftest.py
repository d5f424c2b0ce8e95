"""Session-wide fixtures: the official emulators (started once) and unique names.

Under ``CI=true`` a missing emulator, Java or gcloud fails the run; elsewhere the emulator
variants are skipped with the reason, so a laptop without Java still runs the embedded suite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from keyway import emulators as emu

# The index guard: every query keyway runs needs no index, or one shared/indexes.py declares.
from tests.indexguard import index_guard, pytest_sessionfinish  # noqa: F401

# The leak guard (promise 8): pytest finds the fixture and the report hook by name here.
from tests.leakguard import leak_guard, pytest_runtest_makereport  # noqa: F401


def _strict() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def emulator_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{"FIRESTORE_EMULATOR_HOST": ..., "PUBSUB_EMULATOR_HOST": ...}`` for this session."""
    try:
        running = emu.start(tmp_path_factory.mktemp("emulators"))
    except emu.EmulatorUnavailable as e:
        if _strict():
            pytest.fail(f"emulators are required under CI=true: {e}", pytrace=False)
        pytest.skip(f"emulators unavailable: {e}")
    try:
        yield running.env()
    finally:
        running.stop()


@pytest.fixture
def emulator_env(emulator_hosts: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the google-cloud clients at the emulators for one test."""
    for name, value in emulator_hosts.items():
        monkeypatch.setenv(name, value)
    return emulator_hosts


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, collection and project names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def unique_project(unique: str) -> str:
    """A fresh GCP project id: the Firestore emulator keeps each project's data apart."""
    return f"kw-test-{unique}"
