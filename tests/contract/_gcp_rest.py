"""What the contract suites with a ``gcp-rest`` variant share.

That variant drives an official ``google.cloud`` client with ``transport="rest"`` against a real
HTTP fake from :mod:`tests.fakes`; each suite also has an ``embedded`` variant. A suite supplies
``_embedded(tmp_path, request)`` and ``_gcp_rest(tmp_path, request)`` builders of its harness.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.auth.credentials import AnonymousCredentials

from tests.fakes import FakeGoogleServer

C = TypeVar("C")
H = TypeVar("H")
Build = Callable[[Path, pytest.FixtureRequest], H]


def rest_client(client_class: Callable[..., C], fake: FakeGoogleServer,
                request: pytest.FixtureRequest) -> C:
    """Start ``fake`` (stopped at teardown) and return ``client_class`` speaking REST to it with
    anonymous credentials; loopback calls are kept off any proxy for the test."""
    request.getfixturevalue("monkeypatch").setenv("NO_PROXY", "127.0.0.1,localhost")
    fake.start()
    request.addfinalizer(fake.stop)
    return client_class(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": fake.endpoint},  # http:// is kept by the REST transport
    )


def harness_fixture(embedded: Build[H], gcp_rest: Build[H]) -> Any:
    """The suite's ``harness`` fixture: each test runs once per adapter (``embedded``,
    ``gcp-rest``). Assign it to a module-level name ``harness``."""

    @pytest.fixture(params=["embedded", "gcp-rest"])
    def harness(request: pytest.FixtureRequest, tmp_path: Path) -> H:
        build = embedded if request.param == "embedded" else gcp_rest
        return build(tmp_path, request)

    return harness
