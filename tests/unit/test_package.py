import os
import zipfile

import pytest

from keyway.package import ROOT, package

VIEWER = ROOT / "shared" / "console" / "viewer" / "node_modules" / "swagger-ui-dist"


@pytest.fixture
def viewer() -> None:
    """The api's zip needs Swagger UI's files (make test-deps); locally they may be absent."""
    if not (VIEWER / "swagger-ui-bundle.js").is_file():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("run make test-deps: shared/console/viewer is not installed")
        pytest.skip("shared/console/viewer not installed (make test-deps)")


def test_a_function_package_holds_its_entry_point_and_the_shared_library_only(tmp_path):
    archive = zipfile.ZipFile(package("vault-github", tmp_path))
    names = set(archive.namelist())
    assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/ports.py",
            "shared/providers/providers.json"} <= names
    local_only = ("keyway/", "tests/", "benchmarks/", "functions/")
    assert not [n for n in names if n.startswith(local_only)]
    assert b'event_function("vault-github"' in archive.read("main.py")
    assert not [n for n in names if "/templates/" in n or "node_modules" in n]


def test_the_api_package_holds_the_console_pages_and_the_viewer(tmp_path, viewer):
    names = set(zipfile.ZipFile(package("api", tmp_path)).namelist())
    assert {"shared/console/templates/base.html", "shared/console/templates/result.html",
            "shared/console/static/console.css", "shared/console/static/result.js",
            "shared/console/viewer/node_modules/swagger-ui-dist/swagger-ui-bundle.js",
            "shared/console/viewer/node_modules/swagger-ui-dist/swagger-ui.css"} <= names
    assert not [n for n in names if n.endswith(".map") or "@scarf" in n]


def test_packaging_is_reproducible(tmp_path, viewer):
    first = package("api", tmp_path / "a").read_bytes()
    second = package("api", tmp_path / "b").read_bytes()
    assert first == second
