"""What a Jira Cloud sync walks: projects (the repositories), each project's issues through
JQL, and the comments of every issue that changed.

Issues: ``GET /rest/api/3/search/jql`` with ``project = <id> [AND updated >= "<yyyy/MM/dd
HH:mm>"] ORDER BY updated DESC``, paged by ``nextPageToken`` (the walk's query hook builds the
JQL from the cursor). JQL dates have minute resolution and are read in the time zone of the
token's user (``/myself`` ``timeZone``, kept on the connection at connect): the bound is the
cursor minus the walk's 5-minute overlap, converted to that zone and cut to the minute, so an
issue updated in the same minute as the cursor is read again rather than missed, and the
upserts make a re-read write nothing. Without a known zone the bound is moved 12 hours earlier
(UTC−12 is the furthest behind), which is safe in every zone. Labels come with their issues.
Comments: each issue comes with its ``comment`` field (a page of comments with its ``total``);
where that page holds them all, they are written from it and nothing more is asked
(:attr:`~shared.fetch.plan.ListSpec.embedded`); otherwise ``GET
/rest/api/3/issue/{key}/comment`` paged by ``startAt``/``total`` (100 a page).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.clock import parse_iso
from shared.fetch.plan import ListSpec, Parent, ProviderPlan
from shared.records import jira as normalize

FIELDS = ("summary,status,created,updated,resolutiondate,reporter,creator,assignee,labels,project,"
          "comment")
UNKNOWN_ZONE_MARGIN = timedelta(hours=12)
JQL_TIME = "%Y/%m/%d %H:%M"


def jql_time(since: str, time_zone: str | None) -> str:
    """``since`` (UTC ISO) as a JQL date in ``time_zone``, cut to the minute."""
    moment = parse_iso(since)
    try:
        zone = ZoneInfo(time_zone) if time_zone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        return (moment - UNKNOWN_ZONE_MARGIN).strftime(JQL_TIME)
    return moment.astimezone(zone).strftime(JQL_TIME)


def issues_query(params: Mapping[str, str], since: str | None) -> dict[str, str]:
    """The JQL of one project's issues updated since ``since`` (all of them when None)."""
    project = params["project"]
    if not project.isdigit():
        raise ValueError("a Jira project id is numeric")
    clause = f"project = {project}"
    if since is not None:
        clause += f' AND updated >= "{jql_time(since, params.get("time_zone"))}"'
    return {"jql": f"{clause} ORDER BY updated DESC"}


def embedded_comments(raw: dict) -> dict | None:
    """The issue's comments when its ``comment`` field carries every one of them (a first
    page whose ``total`` is the number it holds), as the comment list would answer them."""
    page = (raw.get("fields") or {}).get("comment") if isinstance(raw.get("fields"), dict) \
        else None
    if not isinstance(page, dict):
        return None
    comments, total = page.get("comments"), page.get("total")
    if (not isinstance(comments, list) or isinstance(total, bool) or not isinstance(total, int)
            or page.get("startAt", 0) != 0 or total != len(comments)):
        return None
    return {"comments": comments}


def _parent(name: str, raw: dict, params) -> Parent:
    key = str(raw["key"])
    return Parent("issue", normalize.number_of(key), {"issueIdOrKey": key})


def _site(connection: dict) -> str | None:
    found = (connection.get("site") or {}).get("id")
    return found if isinstance(found, str) else None


def _settings(connection: dict) -> dict[str, str]:
    zone = (connection.get("account") or {}).get("time_zone")
    return {"time_zone": zone} if isinstance(zone, str) and zone else {}


PLAN = ProviderPlan(
    provider="jira",
    repositories=ListSpec("repositories", "GET /rest/api/3/project/search", {"orderBy": "key"},
                          "repositories", lambda raw, ctx, p: normalize.repository(raw, ctx),
                          full=True, items_key="values"),
    repo_params=lambda repo: {"project": str(repo["external_id"])},
    resources=(
        ListSpec("issues", "GET /rest/api/3/search/jql", {"fields": FIELDS}, "issues",
                 lambda raw, ctx, p: normalize.issue_with_labels(raw, ctx),
                 children=("comments",), items_key="issues", query=issues_query),
    ),
    children={"comments": ListSpec(
        "comments", "GET /rest/api/3/issue/{issueIdOrKey}/comment", {"orderBy": "created"},
        "comments", lambda raw, ctx, p: normalize.comment(
            raw, ctx, "issue", p.number, p.path_params["issueIdOrKey"]),
        items_key="comments", embedded=embedded_comments)},
    parent_of=_parent,
    connection_params=_settings,
    site_of=_site,
)
