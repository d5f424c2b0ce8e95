"""How many pages of a list are left after an answer, where the provider says so.

One reader per pagination style of the provider table (``api.pagination``); ``None`` when the
answer does not tell:

* ``link_header`` / ``keyset`` (GitHub, GitLab): ``X-Total-Pages`` − ``X-Page`` when sent
  (GitLab's offset pages, up to 10,000 items), else the ``page`` of ``Link`` ``rel="last"`` −
  the ``page`` of ``rel="next"`` + 1 (GitHub; a keyset or cursor link carries no page number,
  so it tells nothing). No ``next`` link: 0.
* ``offset`` (``X-Next-Page``): ``X-Total-Pages`` − ``X-Page``.
* ``next_url`` (Bitbucket): ⌈``size`` / ``pagelen``⌉ − ``page`` from the body (``size`` is
  optional there); no ``next``: 0.
* ``body_cursor`` (Jira): ⌈(``total`` − ``startAt`` − items on this page) / ``maxResults``⌉;
  ``/search/jql`` pages by ``nextPageToken`` and sends no total; ``isLast``: 0.

The count is of the list as the provider holds it: exact for a walk that reads to the end (a
full list, a first sync, a list the provider filters by time itself), an upper bound for one
that may stop early at its cursor (:mod:`shared.fetch.progress` shows ``null`` there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

Reader = Callable[[Mapping[str, str], Any], int | None]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _header_pages(headers: Mapping[str, str]) -> int | None:
    total, page = _int(headers.get("X-Total-Pages")), _int(headers.get("X-Page"))
    return None if total is None or page is None else max(total - page, 0)


def _page_of(url: str | None) -> int | None:
    values = parse_qs(urlsplit(url or "").query).get("page")
    return _int(values[0]) if values else None


def _links(headers: Mapping[str, str], body: Any) -> int | None:
    counted = _header_pages(headers)
    if counted is not None:
        return counted
    links = {link.get("rel"): link.get("url")
             for link in requests.utils.parse_header_links(headers.get("Link", ""))}
    if not links.get("next"):
        return 0
    last, nxt = _page_of(links.get("last")), _page_of(links.get("next"))
    return None if last is None or nxt is None else max(last - nxt + 1, 0)


def _offset(headers: Mapping[str, str], body: Any) -> int | None:
    if not str(headers.get("X-Next-Page", "")).strip():
        return 0
    return _header_pages(headers)


def _next_url(headers: Mapping[str, str], body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    if not body.get("next"):
        return 0
    size, pagelen, page = (_int(body.get(k)) for k in ("size", "pagelen", "page"))
    if size is None or not pagelen or page is None:
        return None
    return max(math.ceil(size / pagelen) - page, 0)


def _body_cursor(headers: Mapping[str, str], body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    if body.get("isLast") is True:
        return 0
    total, start, size = (_int(body.get(k)) for k in ("total", "startAt", "maxResults"))
    if total is None or start is None or not size:
        return None
    count = max((len(v) for v in body.values() if isinstance(v, list)), default=0)
    return max(math.ceil((total - start - count) / size), 0)


READERS: dict[str, Reader] = {"link_header": _links, "keyset": _links, "offset": _offset,
                              "next_url": _next_url, "body_cursor": _body_cursor}


def pages_left(style: str, headers: Mapping[str, str], body: Any) -> int | None:
    """Pages after this answer's, as the answer says (module docstring); ``None``: unknown."""
    reader = READERS.get(style)
    return None if reader is None else reader(headers, body)
