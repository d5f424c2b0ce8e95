"""The providers' delivery logs, read for :mod:`shared.webhooks.recovery` through the
metadata-only client built for purpose ``recover`` (only the table's ``api.allowlist.recover``
templates; every request through :mod:`shared.http_egress`).

* GitHub (REST 2022-11-28): the App's webhook — ``GET /app/hook/deliveries`` with the App's
  JWT — and each repository hook keyway registered — ``GET /repos/{owner}/{repo}/hooks/
  {hook_id}/deliveries`` with the connection's token. Only failed attempts are listed
  (``status=failure``: a delivery ``webhook-P`` acknowledged is already recorded), newest
  first, 100 a page, following the ``Link`` cursor until the watermark (GitHub's delivery
  ``id``, which grows) is reached, at most :data:`MAX_PAGES` pages (more than that logs
  ``deliveries.github.log_truncated``: the oldest are left to the next sync). A missed one
  is read whole (``…/deliveries/{delivery_id}``: ``request.payload`` and headers), or, when
  that answer has no payload, redelivered (``POST …/attempts``, same GUID).
* GitLab (17.3+): each project hook keyway registered — ``GET /projects/{id}/hooks/{hook_id}/
  events`` with the connection's token, ``status=client_failure,server_failure`` (GitLab's
  ``server_failure`` includes ``internal error``, a delivery nothing answered), newest first,
  20 a page (GitLab's most), ``page`` links followed until the watermark (the event ``id``,
  which grows). Each event carries its ``request_data`` (the payload) and ``request_headers``;
  an oversize payload is not kept (``{"oversize": true}``) and GitLab's resend would send that
  stand-in, so such an event is unrecoverable. The delivery id is the one ``webhook-gitlab``
  records: ``webhook-id`` of a Standard-Webhooks-signed delivery, else ``X-Gitlab-Event-UUID``.
* Jira Cloud: ``GET /rest/api/3/webhook/failed`` (``maxResults`` 100, ``after`` the
  watermark, the failure time in epoch milliseconds), oldest first; each failure carries its
  ``body``; Jira offers no redelivery, so a failure without a body is unrecoverable.

An answer that is not the documented shape raises :class:`BadDeliveryLog`
(``deliveries.bad_shape``), so the watermark stays.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import PermanentError
from shared.fetch.client import ApiResponse, ProviderClient
from shared.fetch.errors import NotFoundAtProvider
from shared.log import get_logger
from shared.providers import registry
from shared.webhooks.delivery_profiles import PROFILES
from shared.webhooks.recovery import Entry, Stored

MAX_PAGES = 30
PER_PAGE = "100"
APP_LIST = "GET /app/hook/deliveries"
REPO_LIST = "GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries"
GITLAB_EVENTS = "GET /projects/{id}/hooks/{hook_id}/events"
GITLAB_PER_PAGE = "20"  # GitLab refuses more (lib/api/hooks/events.rb: per_page 1..20)
JIRA_FAILED = "GET /rest/api/3/webhook/failed"
log = get_logger("keyway.webhooks.recovery")


class BadDeliveryLog(PermanentError):
    key, title = "deliveries.bad_shape", "The provider's delivery log has an unknown shape"


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class GitHubHookLog:
    """One GitHub hook's log: the App's (``params`` empty) or a repository hook's."""

    provider = "github"

    def __init__(self, client: ProviderClient, key: str, connection: str | None,
                 list_template: str, params: Mapping[str, str], *,
                 registration: tuple[str, str] | None = None) -> None:
        self.client, self.key, self.connection = client, key, connection
        self.registration = registration  # (repository record id, hook id) of a repo hook
        self._list, self._params = list_template, dict(params)

    def entries(self, after: int | None) -> list[Entry]:
        first = self.client.get(self._list, self._params, {"per_page": PER_PAGE,
                                                           "status": "failure"})
        return _newest_first(self, first, self._list, after, lambda body: [
            Entry(i["id"], i["guid"], i["event"], str(i["id"])) for i in _items(body)])

    def stored(self, entry: Entry) -> Stored | None:
        try:
            body = self.client.get(f"{self._list}/{{delivery_id}}",
                                   {**self._params, "delivery_id": entry.ref}).body
        except NotFoundAtProvider:
            return None
        request = body.get("request") if isinstance(body, dict) else None
        if not isinstance(request, dict) or body.get("guid") != entry.guid:
            raise BadDeliveryLog("a delivery without its request, or another delivery")
        payload, headers = request.get("payload"), request.get("headers")
        if not isinstance(payload, dict):
            return None
        sent = {str(k).lower(): str(v) for k, v in (headers or {}).items()} \
            if isinstance(headers, dict) else {}
        forwarded = {name: sent[header.lower()]
                     for name, header in PROFILES["github"].forwarded.items()
                     if header.lower() in sent}
        return Stored(forwarded, payload)

    def redeliver(self, entry: Entry) -> bool:
        template = f"{self._list.replace('GET ', 'POST ', 1)}/{{delivery_id}}/attempts"
        return self.client.post(template, {**self._params, "delivery_id": entry.ref},
                                None).status == 202


def _newest_first(source: GitHubHookLog | GitLabHookEvents, page: ApiResponse, template: str,
                  after: int | None, entries_of: Callable[[Any], list[Entry]]) -> list[Entry]:
    """The entries of a log listed newest first, from ``page`` on through its ``next`` links
    until the watermark ``after`` (or :data:`MAX_PAGES` pages), oldest first."""
    found: list[Entry] = []
    for _ in range(MAX_PAGES):
        for entry in entries_of(page.body):
            if after is not None and entry.position <= after:
                return found[::-1]
            found.append(entry)
        if page.next_url is None:
            return found[::-1]
        page = source.client.get_next(page.next_url, template)
    log.warning(f"deliveries.{source.provider}.log_truncated",
                extra={"fields": {"source": source.key}})
    return found[::-1]


def _items(body: Any) -> list[dict[str, Any]]:
    """A list page of deliveries, each with the fields the job reads, or BadDeliveryLog."""
    if not isinstance(body, list):
        raise BadDeliveryLog("the delivery list is not a list")
    for item in body:
        if not (isinstance(item, dict) and _int(item.get("id"))
                and isinstance(item.get("guid"), str) and item["guid"]
                and isinstance(item.get("event"), str)):
            raise BadDeliveryLog("a delivery without id, guid or event")
    return body


class GitLabHookEvents:
    """One GitLab project hook's failed events (read with the connection's token)."""

    provider = "gitlab"

    def __init__(self, client: ProviderClient, key: str, connection: str,
                 params: Mapping[str, str], *,
                 registration: tuple[str, str] | None = None) -> None:
        self.client, self.key, self.connection = client, key, connection
        self._params, self.registration = dict(params), registration

    def entries(self, after: int | None) -> list[Entry]:
        first = self.client.get(GITLAB_EVENTS, self._params, {
            "status": "client_failure,server_failure", "per_page": GITLAB_PER_PAGE})
        return _newest_first(self, first, GITLAB_EVENTS, after, lambda body: [
            _gitlab_entry(item) for item in _gitlab_events(body)])

    def stored(self, entry: Entry) -> Stored | None:
        return Stored(entry.headers, entry.payload) if entry.payload is not None else None

    def redeliver(self, entry: Entry) -> bool:
        return False  # only an oversize payload lacks here, and a resend would send its stand-in


def _gitlab_events(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise BadDeliveryLog("the hook's events are not a list")
    for item in body:
        if not (isinstance(item, dict) and _int(item.get("id"))
                and isinstance(item.get("request_headers"), dict)):
            raise BadDeliveryLog("a hook event without id or request headers")
    return body


def _gitlab_entry(item: dict[str, Any]) -> Entry:
    sent = {str(k).lower(): str(v) for k, v in item["request_headers"].items()}
    header = (registry.get("gitlab").webhook.delivery_header or "").lower()
    guid = sent.get("webhook-id") or sent.get(header)  # the id webhook-gitlab records
    if not guid:
        raise BadDeliveryLog("a hook event without its delivery id")
    data = item.get("request_data")
    payload = data if isinstance(data, dict) and data != {"oversize": True} else None
    forwarded = {name: sent[header.lower()]
                 for name, header in PROFILES["gitlab"].forwarded.items()
                 if header.lower() in sent}
    return Entry(item["id"], guid, sent.get("x-gitlab-event", ""), str(item["id"]), payload,
                 forwarded)


class JiraFailedLog:
    """The app's failed deliveries on one Jira site (read with one connection's token)."""

    provider = "jira"
    connection = None  # dynamic-webhook deliveries are claimed app-wide (/webhook-jira/)

    def __init__(self, client: ProviderClient, key: str) -> None:
        self.client, self.key = client, key

    def entries(self, after: int | None) -> list[Entry]:
        query = {"maxResults": PER_PAGE, **({"after": str(after)} if after is not None else {})}
        page = self.client.get(JIRA_FAILED, {}, query)
        found: list[Entry] = []
        for _ in range(MAX_PAGES):
            values, size, following = _failed_page(page.body)
            found += [_failure(v) for v in values]
            if not following or len(values) < size:
                return found
            page = self.client.get_next(following, JIRA_FAILED)
        log.warning("deliveries.jira.log_truncated", extra={"fields": {"source": self.key}})
        return found

    def stored(self, entry: Entry) -> Stored | None:
        return Stored({}, entry.payload) if entry.payload is not None else None

    def redeliver(self, entry: Entry) -> bool:
        return False  # Jira documents no redelivery of a failed webhook


def _failed_page(body: Any) -> tuple[list[dict[str, Any]], int, str | None]:
    values = body.get("values") if isinstance(body, dict) else None
    size = body.get("maxResults") if isinstance(body, dict) else None
    following = body.get("next") if isinstance(body, dict) else None
    if not isinstance(values, list) or not _int(size) or not isinstance(following, str | None):
        raise BadDeliveryLog("a failed-webhook page without values or maxResults")
    for value in values:
        if not (isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]
                and _int(value.get("failureTime"))
                and isinstance(value.get("body"), str | None)):
            raise BadDeliveryLog("a failed webhook without id or failureTime")
    return values, size, following


def _failure(value: dict[str, Any]) -> Entry:
    try:
        payload = json.loads(value["body"]) if value.get("body") else None
    except (ValueError, RecursionError):
        payload = None
    payload = payload if isinstance(payload, dict) else None
    event = str((payload or {}).get("webhookEvent") or "")
    return Entry(value["failureTime"], value["id"], event, value["id"], payload)
