"""The GitHub endpoint families keyway must never call (code, not metadata), served like
GitHub serves them so the request log - not a missing route - is what proves they were not
called. Metered like every API call; templates as GitHub documents them:

* ``GET /repos/{owner}/{repo}/contents/{path}`` - a file, base64 content
* ``GET /repos/{owner}/{repo}/git/trees/{tree_sha}``, ``/git/blobs/{file_sha}``,
  ``/git/ref/{ref}``, ``/git/matching-refs/{ref}``
* ``GET /repos/{owner}/{repo}/tarball/{ref}`` and ``/zipball/{ref}`` - 302 to the archive
  (served unmetered at ``/_codeload/...``, as codeload.github.com would)
* ``GET /repos/{owner}/{repo}/compare/{basehead}`` - commits and file patches
* ``GET /repos/{owner}/{repo}/pulls/{pull_number}/files`` - file patches
"""

from __future__ import annotations

import base64
import io
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import PATHS, sha
from keyway.simulators.github_api import API, COMMON_HEADERS, DOCS, _error
from keyway.simulators.github_data import RepoActivity
from keyway.simulators.github_metadata import GET, Produced, RepoEndpoints
from keyway.simulators.github_render import Site
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.server import Route

SOURCE = b'def handle(request):\n    return validate(parse(request))\n'
PATCH = ("@@ -1,2 +1,2 @@\n def handle(request):\n-    return parse(request)\n"
         "+    return validate(parse(request))")


def _file(site: Site, path: str) -> dict[str, Any]:
    return {"sha": sha(site.name, "file", path), "filename": path, "status": "modified",
            "additions": 1, "deletions": 1, "changes": 2,
            "blob_url": f"{site.web}/blob/main/{path}",
            "raw_url": f"{site.web}/raw/main/{path}",
            "contents_url": f"{site.api}/contents/{path}?ref=main", "patch": PATCH}


def _archive(zipped: bool) -> bytes:
    buffer = io.BytesIO()
    if zipped:
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("repo-main/src/app.py", SOURCE)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo("repo-main/src/app.py")
            info.size = len(SOURCE)
            archive.addfile(info, io.BytesIO(SOURCE))
    return buffer.getvalue()


class GitHubForbiddenApi(RepoEndpoints):
    """Contents, git data, archives, compare and pull request files."""

    def routes(self) -> list[Route]:
        repo = f"{API}/repos/<owner>/<repo>"
        return [
            Route(f"{repo}/contents/<path:path>", GET, self._on(self._contents)),
            Route(f"{repo}/git/trees/<tree_sha>", GET, self._on(self._tree)),
            Route(f"{repo}/git/blobs/<file_sha>", GET, self._on(self._blob)),
            Route(f"{repo}/git/ref/<path:ref>", GET, self._on(self._ref)),
            Route(f"{repo}/git/matching-refs/<path:ref>", GET, self._on(self._refs)),
            Route(f"{repo}/tarball/<path:ref>", GET, self._on(self._tarball)),
            Route(f"{repo}/zipball/<path:ref>", GET, self._on(self._zipball)),
            Route(f"{repo}/compare/<path:basehead>", GET, self._on(self._compare)),
            Route(f"{repo}/pulls/<int:pull_number>/files", GET, self._on(self._pull_files)),
            Route("/_codeload/<path:archive>", GET, self.codeload),
        ]

    def _on(self, render: Callable[..., Any]) -> Callable[..., Response]:
        """A metered handler answering ``render(site, **route arguments)``."""
        def handler(request: Request, owner: str, repo: str, **args: Any) -> Response:
            def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
                if "pull_number" in args and self.activity.thread(
                        act, args["pull_number"]) is None:
                    return _error(404, "Not Found", f"{DOCS}/pulls/pulls")
                result = render(site, **args)
                return result if isinstance(result, Response) else (result,
                                                                    dict(COMMON_HEADERS))
            return self._repo_call(request, owner, repo, produce)
        return handler

    @staticmethod
    def _contents(site: Site, path: str) -> dict[str, Any]:
        blob, url = sha(site.name, "file", path), f"{site.api}/contents/{path}?ref=main"
        links = {"self": url, "git": f"{site.api}/git/blobs/{blob}",
                 "html": f"{site.web}/blob/main/{path}"}
        return {"type": "file", "encoding": "base64", "size": len(SOURCE),
                "name": path.rsplit("/", 1)[-1], "path": path,
                "content": base64.encodebytes(SOURCE).decode(), "sha": blob, "url": url,
                "git_url": links["git"], "html_url": links["html"],
                "download_url": f"{site.host}_codeload/{site.name}/raw/main/{path}",
                "_links": links}

    @staticmethod
    def _tree(site: Site, tree_sha: str) -> dict[str, Any]:
        entries = [{"path": path, "mode": "100644", "type": "blob",
                    "sha": sha(site.name, "file", path), "size": len(SOURCE),
                    "url": f"{site.api}/git/blobs/{sha(site.name, 'file', path)}"}
                   for path in PATHS]
        return {"sha": tree_sha, "url": f"{site.api}/git/trees/{tree_sha}", "tree": entries,
                "truncated": False}

    @staticmethod
    def _blob(site: Site, file_sha: str) -> dict[str, Any]:
        return {"sha": file_sha, "node_id": f"B_{file_sha[:12]}", "size": len(SOURCE),
                "url": f"{site.api}/git/blobs/{file_sha}", "encoding": "base64",
                "content": base64.encodebytes(SOURCE).decode()}

    @staticmethod
    def _ref(site: Site, ref: str) -> dict[str, Any]:
        commit = sha(site.name, "ref", ref)
        return {"ref": f"refs/{ref}", "node_id": f"REF_{commit[:12]}",
                "url": f"{site.api}/git/refs/{ref}",
                "object": {"type": "commit", "sha": commit,
                           "url": f"{site.api}/git/commits/{commit}"}}

    def _refs(self, site: Site, ref: str) -> list[dict[str, Any]]:
        return [self._ref(site, ref)]

    @staticmethod
    def _tarball(site: Site, ref: str) -> Response:
        return Response(status=302, headers={
            "Location": f"{site.host}_codeload/{site.name}/legacy.tar.gz/{ref}"})

    @staticmethod
    def _zipball(site: Site, ref: str) -> Response:
        return Response(status=302, headers={
            "Location": f"{site.host}_codeload/{site.name}/legacy.zip/{ref}"})

    @staticmethod
    def _compare(site: Site, basehead: str) -> dict[str, Any]:
        head = sha(site.name, "compare", basehead)
        html = f"{site.web}/compare/{basehead}"
        return {"url": f"{site.api}/compare/{basehead}", "html_url": html,
                "permalink_url": html, "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch", "status": "ahead", "ahead_by": 1,
                "behind_by": 0, "total_commits": 1,
                "commits": [{"sha": head, "commit": {"message": "Validate requests"}}],
                "files": [_file(site, path) for path in PATHS[:2]]}

    @staticmethod
    def _pull_files(site: Site, pull_number: int) -> list[dict[str, Any]]:
        return [_file(site, path) for path in PATHS[:3]]

    @staticmethod
    def codeload(request: Request, archive: str) -> Response:
        """The archive a tarball/zipball redirect points at (not an API call: unmetered)."""
        zipped = ".zip" in archive
        kind = "application/zip" if zipped else "application/x-gzip"
        name = "repo-main.zip" if zipped else "repo-main.tar.gz"
        return Response(_archive(zipped), content_type=kind,
                        headers={"Content-Disposition": f"attachment; filename={name}"})
