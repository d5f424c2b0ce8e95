"""Package each function for Cloud Functions: ``main.py`` + ``shared/`` (its ``.py`` and
``.json`` files, e.g. the provider table) + ``requirements.txt``; the ``api`` zip also takes
the console's templates and static files and Swagger UI's two files from
``shared/console/viewer/node_modules`` (``make package`` runs ``npm ci`` there first).

    python -m keyway.package dist/      → dist/<function>.zip for every component

Only the deployed library travels: local tooling (``keyway/``), tests and benchmarks never do.
Zip entries have fixed timestamps so the same tree gives byte-identical archives.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from shared.components import COMPONENTS

ROOT = Path(__file__).resolve().parent.parent
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _add(archive: zipfile.ZipFile, source: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, source.read_bytes())


def package(function: str, out_dir: Path) -> Path:
    if function not in COMPONENTS:
        raise KeyError(f"unknown function {function!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{function}.zip"
    with zipfile.ZipFile(target, "w") as archive:
        _add(archive, ROOT / "functions" / function / "main.py", "main.py")
        _add(archive, ROOT / "requirements.txt", "requirements.txt")
        for path in sorted(p for p in (ROOT / "shared").rglob("*")
                           if p.suffix in (".py", ".json") and "__pycache__" not in p.parts
                           and "node_modules" not in p.parts):
            _add(archive, path, str(path.relative_to(ROOT)))
        if function == "api":
            for path in console_files():
                _add(archive, path, str(path.relative_to(ROOT)))
    return target


def console_files() -> list[Path]:
    """What the console serves besides code: templates, static files, the viewer's files."""
    console = ROOT / "shared" / "console"
    files = sorted(p for folder in ("templates", "static") for p in (console / folder).iterdir()
                   if p.suffix in (".html", ".css", ".js"))
    viewer = console / "viewer" / "node_modules" / "swagger-ui-dist"
    needed = [viewer / name for name in ("swagger-ui-bundle.js", "swagger-ui.css")]
    missing = [str(p.relative_to(ROOT)) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run npm ci --ignore-scripts --prefix "
                         "shared/console/viewer (make package does)")
    return files + needed


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else ROOT / "dist"
    for name in COMPONENTS:
        print(package(name, out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
