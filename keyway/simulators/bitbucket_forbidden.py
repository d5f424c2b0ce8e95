"""The Bitbucket endpoint families keyway must never call (code, not metadata), served like
Bitbucket serves them so the request log - not a missing route - is what proves they were not
called. Metered like every ``/2.0/repositories/*`` call; paths as Bitbucket documents them:

* ``GET /repositories/{workspace}/{repo_slug}/src/{commit}/{path}`` - file contents
* ``GET /repositories/{workspace}/{repo_slug}/diff/{spec}`` and ``/patch/{spec}``
* ``GET /repositories/{workspace}/{repo_slug}/pullrequests/{id}/diff`` and ``/patch``
* ``GET /repositories/{workspace}/{repo_slug}/commits`` - commit list
* ``GET /repositories/{workspace}/{repo_slug}/downloads`` - release files
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import PATHS, sha
from keyway.simulators.bitbucket_api import BitbucketApi, Produced, paginate
from keyway.simulators.bitbucket_metadata import REPO
from keyway.simulators.bitbucket_render import Site
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.server import Route

SOURCE = b"def handle(request):\n    return validate(parse(request))\n"
DIFF = ("diff --git a/src/app.py b/src/app.py\n--- a/src/app.py\n+++ b/src/app.py\n"
        "@@ -1,2 +1,2 @@\n def handle(request):\n-    return parse(request)\n"
        "+    return validate(parse(request))\n")


class BitbucketForbiddenApi(BitbucketApi):
    """Source, diffs, patches, commits and downloads."""

    def routes(self) -> list[Route]:
        pr = f"{REPO}/pullrequests/<int:pull_request_id>"
        return [Route(f"{REPO}/src/<commit>/<path:path>", ("GET",), self._text(SOURCE)),
                Route(f"{REPO}/diff/<spec>", ("GET",), self._text(DIFF.encode())),
                Route(f"{REPO}/patch/<spec>", ("GET",), self._text(DIFF.encode())),
                Route(f"{pr}/diff", ("GET",), self._text(DIFF.encode())),
                Route(f"{pr}/patch", ("GET",), self._text(DIFF.encode())),
                Route(f"{REPO}/commits", ("GET",), self.commits),
                Route(f"{REPO}/downloads", ("GET",), self.downloads)]

    def _text(self, body: bytes):
        def handler(request: Request, **args: object) -> Response:
            return self.call(request, lambda info, site: Response(
                body, content_type="text/plain; charset=utf-8"))
        return handler

    def commits(self, request: Request, workspace: str, repo_slug: str) -> Response:
        def produce(info: TokenInfo, site: Site) -> Produced:
            values = [{"type": "commit", "hash": sha(workspace, repo_slug, p),
                       "message": f"Change {p}\n"} for p in PATHS]
            return paginate(request, values, len(values), 1, 10), 200
        return self.call(request, produce)

    def downloads(self, request: Request, workspace: str, repo_slug: str) -> Response:
        def produce(info: TokenInfo, site: Site) -> Produced:
            values = [{"name": f"{repo_slug}-1.0.tar.gz", "size": len(SOURCE),
                       "links": {"self": site.link(f"/{workspace}/{repo_slug}/downloads/x")}}]
            return paginate(request, values, 1, 1, 10), 200
        return self.call(request, produce)
