"""One signed POST of an event to a subscription's URL, through the egress door.

The request leaves through :mod:`shared.http_egress` (the door provider calls use): the URL's
host is resolved and every address checked by the SSRF guard at this attempt, the connection
pinned to a checked address, no proxy, and a redirect is never followed. Timeouts: 5 s to
connect, 10 s to read. Only the status is read; the answer's body is never read or logged.
The secret is read from the secrets port for each attempt and never logged or stored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import requests

from shared import http_egress
from shared.errors import NotFound
from shared.notify import sign
from shared.notify.subscriptions import secret_name
from shared.ports import Ports

TIMEOUT = (5.0, 10.0)
_SESSION: list[requests.Session] = []


@dataclass(frozen=True)
class Result:
    ok: bool
    status: int | None = None
    error: str | None = None  # a stable key
    final: bool = False  # no later attempt can succeed
    duration_ms: int = 0


def body_of(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


def _session() -> requests.Session:
    if not _SESSION:
        _SESSION.append(http_egress.egress_session())
    return _SESSION[0]


def post(ports: Ports, event: dict, subscription: str, url: str, attempt: int) -> Result:
    try:
        secret = ports.secrets.access(secret_name(subscription))
    except NotFound:
        return Result(False, error="notify.secret_missing", final=True)
    body = body_of(event)
    headers = sign.headers(secret, int(ports.clock.now().timestamp()), body, event, attempt)
    started = time.monotonic()
    try:
        with _session().post(url, data=body, headers=headers, timeout=TIMEOUT,
                             allow_redirects=False, stream=True) as response:
            status = response.status_code
    except http_egress.RedirectRefused:
        return _result(started, False, error="notify.redirect_refused", final=True)
    except http_egress.AddressRefused:
        return _result(started, False, error="ssrf.refused", final=True)
    except requests.Timeout:
        return _result(started, False, error="notify.timeout")
    except requests.RequestException:
        return _result(started, False, error="notify.connection_failed")
    if 200 <= status < 300:
        return _result(started, True, status)
    return _result(started, False, status, error=f"notify.http_{status}")


def _result(started: float, ok: bool, status: int | None = None, *, error: str | None = None,
            final: bool = False) -> Result:
    return Result(ok, status, error, final, int((time.monotonic() - started) * 1000))
