"""GitLab's project hooks as the simulator serves them (under ``/api/v4``), metered like every
other endpoint (docs.gitlab.com/api/project_webhooks):

* ``GET /projects/{id}/hooks`` - the project's hooks (never their ``token``);
* ``POST /projects/{id}/hooks`` - form or JSON: ``url`` (required, else 400 ``url is
  missing``), ``token``, the event flags (``push_events`` defaults to true, every other to
  false) and ``enable_ssl_verification`` → 201 with the hook. GitLab does not refuse a second
  hook with the same URL, and neither does the simulator;
* ``DELETE /projects/{id}/hooks/{hook_id}`` → 204; an unknown hook → 404 ``Not found``;
* ``GET /projects/{id}/hooks/{hook_id}/events`` ("Get a list of project webhook events",
  GitLab 17.3) - the hook's delivery attempts of the last 7 days, newest first (GitLab's
  ``WebHookLog`` orders by ``created_at`` descending), ``per_page`` 1…20 (default 20; GitLab's
  ``lib/api/hooks/events.rb`` refuses more with 400), ``page``; ``status`` a comma-separated
  list of status codes (those Rack knows, ``Rack::Utils::HTTP_STATUS_CODES``; the simulator
  checks them against :class:`http.HTTPStatus`) or ``successful`` (2xx), ``client_failure``
  (4xx), ``server_failure`` (5xx and ``internal error``, a delivery that got no answer),
  anything else (``999`` too) 400. Each event:
  ``id``, ``url``, ``trigger``, ``request_headers`` (``X-Gitlab-Token`` shown as
  ``[REDACTED]``), ``request_data`` (the payload), ``response_headers``, ``response_body``,
  ``execution_duration`` and ``response_status`` as a string.

Access: writing needs the ``api`` scope (``read_api`` may list), as every GitLab write does
(:data:`.gitlab_api.SCOPES`); a user who is not a maintainer of the project
(:meth:`GitLabSimulator.deny_maintainer`) gets 403 ``403 Forbidden``. :func:`deliver` sends an
event to every hook of a project subscribed to it, with the hook's secret token in
``X-Gitlab-Token``, through the simulator's :class:`~.delivery_log.DeliveryLog` (whose drop knob
loses attempts as a failed delivery, logged ``503``).
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import iso
from keyway.simulators.delivery_log import Delivery, DeliveryLog
from keyway.simulators.gitlab_api import API, GitLabData
from keyway.simulators.gitlab_data import GitLabActivity, ProjectActivity
from keyway.simulators.gitlab_metadata import Produced, ProjectEndpoints
from keyway.simulators.gitlab_render import Site
from keyway.simulators.hooks import Hook, HookStore
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Route
from keyway.simulators.wire import json_response

EVENT_FLAGS = ("push_events", "tag_push_events", "issues_events", "confidential_issues_events",
               "merge_requests_events", "note_events", "confidential_note_events",
               "job_events", "pipeline_events", "wiki_page_events", "deployment_events",
               "releases_events")
# object_kind of a delivery → (X-Gitlab-Event, the flag that subscribes to it)
EVENTS = {"merge_request": ("Merge Request Hook", "merge_requests_events"),
          "issue": ("Issue Hook", "issues_events"), "note": ("Note Hook", "note_events"),
          "push": ("Push Hook", "push_events")}


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def hook_json(hook: Hook, project_id: int) -> dict[str, Any]:
    """A project hook as GitLab renders it (no token)."""
    return {"id": hook.id, "url": hook.url, "name": None, "description": None,
            "project_id": project_id, "created_at": iso(int(hook.created_at)),
            **{flag: flag in hook.events for flag in EVENT_FLAGS},
            "push_events_branch_filter": None,
            "enable_ssl_verification": hook.options.get("enable_ssl_verification", True),
            "alert_status": "executable", "disabled_until": None}


class GitLabHooksApi(ProjectEndpoints):
    """The project-hook endpoints over ``hooks``."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: GitLabData,
                 activity: GitLabActivity, hooks: HookStore, log: DeliveryLog) -> None:
        super().__init__(authority, limiter, data, activity)
        self.hooks, self.log = hooks, log

    def routes(self) -> list[Route]:
        project = f"{API}/projects/<id>"
        return [Route(f"{project}/hooks", ("GET", "POST"), self.project_hooks),
                Route(f"{project}/hooks/<int:hook_id>", ("DELETE",), self.delete_hook),
                Route(f"{project}/hooks/<int:hook_id>/events", ("GET",), self.hook_events)]

    def _hook_call(self, request: Request, id: str, produce: Any) -> Response:
        def run(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
            if act.project["id"] in self.data.maintainer_denied:
                return json_response({"message": "403 Forbidden"}, 403)
            return produce(act, info)
        return self._project_call(request, id, run)

    def project_hooks(self, request: Request, id: str) -> Response:
        if request.method == "POST":
            return self._hook_call(request, id,
                                   lambda act, info: self._create(request, act))

        def produce(act: ProjectActivity, info: TokenInfo) -> Produced:
            found = self.hooks.list(str(act.project["id"]))
            return self._small(request, found, lambda h: hook_json(h, act.project["id"]))
        return self._hook_call(request, id, produce)

    def _create(self, request: Request, act: ProjectActivity) -> Response:
        body = request.get_json(silent=True) if request.is_json else None
        params: dict[str, Any] = body if isinstance(body, dict) else request.form.to_dict()
        url = params.get("url")
        if not isinstance(url, str) or not url:
            return json_response({"error": "url is missing"}, 400)
        if not url.startswith(("http://", "https://")):
            return json_response({"message": {"url": ["is blocked: Only allowed schemes are "
                                                      "http, https"]}}, 422)
        events = tuple(flag for flag in EVENT_FLAGS
                       if _flag(params.get(flag, flag == "push_events")))
        hook = self.hooks.add(str(act.project["id"]), url, str(params.get("token") or ""),
                              events, self.limiter.clock(), enable_ssl_verification=_flag(
                                  params.get("enable_ssl_verification", True)))
        return json_response(hook_json(hook, act.project["id"]), 201)

    def delete_hook(self, request: Request, id: str, hook_id: int) -> Response:
        def produce(act: ProjectActivity, info: TokenInfo) -> Produced:
            if not self.hooks.remove(str(act.project["id"]), hook_id):
                return json_response({"message": "404 Not found"}, 404)
            return Response(status=204)
        return self._hook_call(request, id, produce)


    def hook_events(self, request: Request, id: str, hook_id: int) -> Response:
        def produce(act: ProjectActivity, info: TokenInfo) -> Produced:
            if not any(h.id == hook_id for h in self.hooks.list(str(act.project["id"]))):
                return json_response({"message": "404 Not found"}, 404)
            per_page = request.args.get("per_page", "20")
            wanted = [w for w in request.args.get("status", "").split(",") if w]
            if not per_page.isdigit() or not 1 <= int(per_page) <= MAX_EVENTS_PAGE or any(
                    w not in STATUS_FILTERS and not _known_status(w) for w in wanted):
                return json_response({"error": "per_page, status does not have a valid value"},
                                     400)
            since = self.limiter.clock() - RETENTION_SECONDS
            found = [d for d in reversed(self.log.records(str(hook_id)))
                     if d.delivered_at >= since and _matches(d, wanted)]
            return self._small(request, found, event_json)
        return self._hook_call(request, id, produce)


MAX_EVENTS_PAGE = 20
RETENTION_SECONDS = 7 * 86400  # WebHookLog::MAX_RECENT_DAYS
STATUS_FILTERS = {"successful": range(200, 300), "client_failure": range(400, 500),
                  "server_failure": range(500, 600)}
INTERNAL_ERROR = "internal error"  # GitLab's response_status when nothing answered
HTTP_STATUSES = frozenset(int(status) for status in HTTPStatus)  # Rack's list, near enough


def _known_status(wanted: str) -> bool:
    """Whether a ``status`` filter is a status code GitLab accepts (Rack's list of them)."""
    return wanted.isdigit() and int(wanted) in HTTP_STATUSES


def _status(d: Delivery) -> str:
    return str(d.status_code) if d.status_code else INTERNAL_ERROR


def _matches(d: Delivery, wanted: list[str]) -> bool:
    if not wanted:
        return True
    for w in wanted:
        if w.isdigit() and d.status_code == int(w):
            return True
        if w in STATUS_FILTERS and d.status_code in STATUS_FILTERS[w]:
            return True
        if w == "server_failure" and not d.status_code:
            return True
    return False


def event_json(d: Delivery) -> dict[str, Any]:
    """One logged attempt as GitLab's events list renders it."""
    headers = {k: ("[REDACTED]" if k.lower() == "x-gitlab-token" else v)
               for k, v in d.request_headers.items()}
    return {"id": d.id, "url": d.url, "trigger": d.extra.get("trigger"),
            "request_headers": headers, "request_data": d.payload,
            "response_headers": d.response_headers or {}, "response_body": d.response_body or "",
            "execution_duration": round(d.duration, 6), "response_status": _status(d)}


TRIGGERS = {"merge_request": "merge_request_hooks", "issue": "issue_hooks",
            "note": "note_hooks", "push": "push_hooks"}


def deliver(hooks: HookStore, log: DeliveryLog, project_id: int, payload: dict[str, Any],
            instance: str = "https://gitlab.example.com") -> list[Delivery]:
    """Send ``payload`` (its ``object_kind`` names the event) to every hook of the project
    subscribed to it, with the hook's token in ``X-Gitlab-Token``, through ``log`` (its drop
    knob applies); returns the logged attempts."""
    header, flag = EVENTS[payload["object_kind"]]
    body, sent = json.dumps(payload).encode(), []
    for hook in hooks.list(str(project_id)):
        if flag not in hook.events:
            continue
        event_uuid = str(uuid.uuid4())
        headers = {"X-Gitlab-Event": header, "X-Gitlab-Event-UUID": event_uuid,
                   "X-Gitlab-Webhook-UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, hook.url)),
                   "X-Gitlab-Instance": instance, "User-Agent": "GitLab/sim",
                   "Idempotency-Key": str(uuid.uuid4())}
        if hook.secret:
            headers["X-Gitlab-Token"] = hook.secret
        sent.append(log.send(hook=str(hook.id), url=hook.url, guid=event_uuid, event=header,
                             action=payload.get("object_attributes", {}).get("action")
                             if isinstance(payload.get("object_attributes"), dict) else None,
                             payload=payload, body=body, headers=headers,
                             trigger=TRIGGERS[payload["object_kind"]]))
    return sent
