import zipfile

from keyway.package import package


def test_a_function_package_holds_its_entry_point_and_the_shared_library_only(tmp_path):
    archive = zipfile.ZipFile(package("vault-github", tmp_path))
    names = set(archive.namelist())
    assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/ports.py",
            "shared/providers/providers.json"} <= names
    local_only = ("keyway/", "tests/", "benchmarks/", "functions/")
    assert not [n for n in names if n.startswith(local_only)]
    assert b'event_function("vault-github"' in archive.read("main.py")


def test_packaging_is_reproducible(tmp_path):
    first = package("api", tmp_path / "a").read_bytes()
    second = package("api", tmp_path / "b").read_bytes()
    assert first == second
