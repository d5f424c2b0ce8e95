"""The GitLab endpoint families keyway must never call (code, not metadata), served like
GitLab serves them so the request log - not a missing route - is what proves they were not
called. Metered like every API call; templates as GitLab documents them:

* ``GET /projects/{id}/repository/files/{file_path}`` (base64 content) and ``.../raw``
* ``GET /projects/{id}/repository/archive`` and ``/repository/archive.{format}`` - bytes
* ``GET /projects/{id}/repository/tree`` - entries
* ``GET /projects/{id}/repository/compare`` - commits and diffs
* ``GET /projects/{id}/merge_requests/{merge_request_iid}/diffs`` - diffs
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import PATHS, sha
from keyway.simulators.gitlab_api import API
from keyway.simulators.gitlab_data import ProjectActivity
from keyway.simulators.gitlab_metadata import GET, Produced, ProjectEndpoints, not_found
from keyway.simulators.gitlab_render import Site
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.server import Route

SOURCE = b"def handle(request):\n    return validate(parse(request))\n"
DIFF = ("@@ -1,2 +1,2 @@\n def handle(request):\n-    return parse(request)\n"
        "+    return validate(parse(request))\n")


def _diff(path: str) -> dict[str, Any]:
    return {"old_path": path, "new_path": path, "a_mode": "100644", "b_mode": "100644",
            "diff": DIFF, "new_file": False, "renamed_file": False, "deleted_file": False,
            "generated_file": False}


class GitLabForbiddenApi(ProjectEndpoints):
    """Repository files, archives, tree, compare and merge request diffs."""

    def routes(self) -> list[Route]:
        repo = f"{API}/projects/<id>/repository"
        return [
            Route(f"{repo}/files/<file_path>/raw", GET, self._on(self._raw)),
            Route(f"{repo}/files/<file_path>", GET, self._on(self._file)),
            Route(f"{repo}/archive", GET, self._on(self._archive)),
            Route(f"{repo}/archive.<format>", GET, self._on(self._archive)),
            Route(f"{repo}/tree", GET, self._on(self._tree)),
            Route(f"{repo}/compare", GET, self._on(self._compare)),
            Route(f"{API}/projects/<id>/merge_requests/<int:merge_request_iid>/diffs", GET,
                  self._on(self._diffs)),
        ]

    def _on(self, render: Callable[..., Any]) -> Callable[..., Response]:
        """A metered handler answering ``render(site, **route arguments)``."""
        def handler(request: Request, id: str, **args: Any) -> Response:
            def produce(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
                iid = args.get("merge_request_iid")
                if iid is not None and self.activity.thread(act, "MergeRequest", iid) is None:
                    return not_found("Merge Request")
                result = render(site, **args)
                return result if isinstance(result, Response) else (result, {})
            return self._project_call(request, id, produce)
        return handler

    @staticmethod
    def _raw(site: Site, file_path: str) -> Response:
        return Response(SOURCE, content_type="text/plain; charset=utf-8",
                        headers={"X-Gitlab-File-Path": unquote(file_path)})

    @staticmethod
    def _file(site: Site, file_path: str) -> dict[str, Any]:
        path = unquote(file_path)
        blob = sha(site.path, "file", path)
        return {"file_name": path.rsplit("/", 1)[-1], "file_path": path,
                "size": len(SOURCE), "encoding": "base64",
                "content": base64.b64encode(SOURCE).decode(), "content_sha256": sha(path),
                "ref": "main", "blob_id": blob, "commit_id": sha(site.path, "main"),
                "last_commit_id": sha(site.path, "main"), "execute_filemode": False}

    @staticmethod
    def _archive(site: Site, format: str = "tar.gz") -> Response:
        name = f"{site.project['path']}-main.{format}"
        return Response(gzip.compress(SOURCE, mtime=0), content_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Content-Transfer-Encoding": "binary"})

    @staticmethod
    def _tree(site: Site) -> list[dict[str, Any]]:
        return [{"id": sha(site.path, "file", path), "name": path.rsplit("/", 1)[-1],
                 "type": "blob", "path": path, "mode": "100644"} for path in PATHS]

    @staticmethod
    def _compare(site: Site) -> dict[str, Any]:
        head = sha(site.path, "compare")
        commit = {"id": head, "short_id": head[:8], "title": "Validate requests",
                  "message": "Validate requests\n", "author_name": "Developer 1",
                  "created_at": "2024-01-01T00:00:00.000Z"}
        return {"commit": commit, "commits": [commit],
                "diffs": [_diff(path) for path in PATHS[:2]], "compare_timeout": False,
                "compare_same_ref": False, "web_url": f"{site.page}/-/compare/main...dev"}

    @staticmethod
    def _diffs(site: Site, merge_request_iid: int) -> list[dict[str, Any]]:
        return [_diff(path) for path in PATHS[:3]]
