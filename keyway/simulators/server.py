"""The simulators' base: a real threaded HTTP server on loopback, a routing table, a request
log, fault injection and latency, plus the OAuth bookkeeping and rate-limit budget every
provider has.

A provider simulator subclasses :class:`Simulator`, returns its routes from
:meth:`Simulator.routes` and renders its own bodies; everything here is provider-neutral. The
OAuth authorization server lives in :mod:`.oauth`, the budget in :mod:`.ratelimit`, HTTP helpers
in :mod:`.wire`. Each logged request carries the ``template`` of the route it matched
(``/repos/{owner}/{repo}/pulls``), so tests count calls per endpoint family; faults are
``fail_next``, ``stall_next``, ``malformed_next`` and provider-built ones (``queue_fault``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import Account, Issued, TokenInfo, TokenPolicy
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.wire import (
    JSON_TYPE,
    ROUTE,
    json_response,
    route_template,
    routing_path,
    truncated,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Query parameters whose values never reach the request log (credentials in a query string).
SENSITIVE_PARAMS = frozenset({"access_token", "client_secret", "code", "code_verifier",
                              "private_token", "refresh_token", "token"})
LOGGED_HEADERS = ("accept", "content-type", "if-none-match", "user-agent",
                  "x-github-api-version")

Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    """One row of a simulator's routing table (werkzeug rule syntax: ``/orgs/<org>/repos``)."""

    path: str
    methods: tuple[str, ...]
    handler: Handler


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the simulator saw it. Credential values are never kept: sensitive
    query parameters read ``[redacted]`` and ``authorization`` holds only its scheme."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    time: float  # the simulator's clock when the request arrived
    template: str | None = None  # the matched route, e.g. ``/repos/{owner}/{repo}/pulls``


@dataclass
class Fault:
    """A queued fault: answer ``status`` (or, when None, the real answer) after ``delay`` s."""

    status: int | None
    remaining: int
    delay: float = 0.0
    body: bytes | None = None
    headers: dict[str, str] | None = None
    path_prefix: str | None = None
    respond: Callable[[Request], Response] | None = None  # builds the whole answer
    truncate: bool = False  # the real answer as a 200 with its JSON body cut short

    def applies(self, path: str) -> bool:
        return self.remaining > 0 and (self.path_prefix is None
                                       or path.startswith(self.path_prefix))


class _QuietHandler(WSGIRequestHandler):
    """No access log: request lines may carry authorization codes."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Simulator:
    """Base of the provider simulators: lifecycle, routing, request log, faults, latency,
    OAuth bookkeeping (through :attr:`oauth`) and a rate-limit budget per account.

    Subclasses implement :meth:`routes` and may override :meth:`not_found`; ``authority`` is
    the OAuth server class (Jira's rotates refresh tokens in revocable families). Use as a
    context manager or call :meth:`start` / :meth:`stop`. Binds a loopback address only:
    ``127.0.0.1``, or another one given as ``host`` (a second "self-hosted" instance, e.g.
    ``127.0.0.2``).
    """

    def __init__(self, *, policy: TokenPolicy, account: Account, rate_limit: int,
                 rate_window: int, port: int = 0, clock: Callable[[], float] = time.time,
                 on_issue: Callable[[str], object] | None = None,
                 authority: type[OAuthAuthority] = OAuthAuthority,
                 others: Iterable[Account] = (), host: str = HOST) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("a simulator binds a loopback address only")
        self.clock, self.port, self.host = clock, port, host
        self.oauth = authority(policy, account, clock=clock, on_issue=on_issue)
        for other in others:  # more users who can sign in (by ``login``)
            self.oauth.add_account(other)
        self.rate_limit = RateLimiter(rate_limit, rate_window, clock)
        self.latency = 0.0  # seconds added to every request
        self._log: list[LoggedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._map = Map([Rule(r.path, methods=list(r.methods), endpoint=r.handler)
                         for r in self.routes()])
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> Simulator:
        """Serve on :attr:`host` (port 0 picks a free one) in a daemon thread."""
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.port
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True,
                                        name=f"{type(self).__name__}:{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:49152`` (known once started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    # ---- knobs --------------------------------------------------------------------------------
    def register_client(self, client_id: str, client_secret: str,
                        redirect_uris: list[str]) -> None:
        """Register an OAuth client; redirect URIs are matched exactly."""
        self.oauth.register_client(client_id, client_secret, redirect_uris)

    def sign_in_page(self, on: bool = True) -> None:
        """On: an authorization request without ``login`` gets a sign-in page listing the
        accounts (a person chooses who signs in); off (default): the default user signs in."""
        self.oauth.sign_in_page = on

    @property
    def accounts(self) -> list[Account]:
        """Every user who can sign in, default first."""
        default = self.oauth.account
        return [default, *(a for a in self.oauth.accounts.values() if a != default)]

    def set_user(self, login: str, id: int, name: str) -> None:
        """The user who is signed in and auto-approves every authorization request."""
        self.oauth.set_account(Account(login, id, name))

    def set_consent(self, approve: bool) -> None:
        """False: the user denies, authorize redirects with ``error=access_denied``."""
        self.oauth.approve = approve

    def fail_next(self, status: int, count: int = 1, *, body: bytes | None = None,
                  headers: dict[str, str] | None = None, path_prefix: str | None = None,
                  delay: float = 0.0) -> None:
        """Answer the next ``count`` requests (under ``path_prefix``) with ``status``."""
        with self._lock:
            self._faults.append(Fault(status, count, delay, body, headers, path_prefix))

    def stall_next(self, seconds: float, count: int = 1, *,
                   path_prefix: str | None = None) -> None:
        """Delay the next ``count`` requests by ``seconds`` before answering them normally."""
        with self._lock:
            self._faults.append(Fault(None, count, seconds, path_prefix=path_prefix))

    def malformed_next(self, count: int = 1, *, path_prefix: str | None = "/api/") -> None:
        """Answer the next ``count`` API requests with a 200 whose JSON body is cut in half
        (the real answer, served and metered, then truncated; no ``ETag``)."""
        with self._lock:
            self._faults.append(Fault(None, count, path_prefix=path_prefix, truncate=True))

    def clear_faults(self, *, path_prefix: str | None = None) -> None:
        """Drop the queued faults (those under ``path_prefix`` only, when given): heal."""
        with self._lock:
            self._faults = [f for f in self._faults if path_prefix is not None and not (
                f.path_prefix or "").startswith(path_prefix)]

    def queue_fault(self, fault: Fault) -> None:
        """Queue a provider-built fault (e.g. a rate-limit answer); first queued, first used."""
        with self._lock:
            self._faults.append(fault)

    @property
    def account(self) -> Account:
        """The signed-in user (whose budget :meth:`quota_used` reads by ``account.id``)."""
        return self.oauth.account

    def quota_used(self, user_id: object) -> int:
        """Requests ``user_id`` has spent in the current rate-limit window (304s are free)."""
        return self.rate_limit.peek(user_id).used

    @property
    def requests_log(self) -> list[LoggedRequest]:
        """A snapshot of every request served so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def access_tokens(self) -> dict[str, TokenInfo]:
        """Issued access tokens → who, which scopes, until when (live view)."""
        return self.oauth.access_tokens

    @property
    def revoked(self) -> set[str]:
        """Tokens revoked or used up (refresh tokens after rotation)."""
        return self.oauth.revoked

    mint_scopes: tuple[str, ...] = ()  # what :meth:`mint_token` grants unless told

    def mint_token(self, scopes: tuple[str, ...] | None = None,
                   client_id: str = "simulator") -> Issued:
        """A token pair for the current user without the browser flow (fetcher tests); by
        default with :attr:`mint_scopes`, which lets it do everything the simulator serves."""
        return self.oauth.mint(client_id, scopes=self.mint_scopes if scopes is None else scopes)

    # ---- provider hooks -----------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The routing table; subclasses list their endpoints here."""
        raise NotImplementedError

    def not_found(self, request: Request) -> Response:
        return json_response({"message": "Not Found"}, 404)

    # ---- WSGI ---------------------------------------------------------------------------------
    def app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """The WSGI application (also mountable without :meth:`start`)."""
        request = Request(environ)
        received = self.clock()
        rule, args, miss = self._match(request)
        template = route_template(rule.rule) if rule is not None else None
        request.environ[ROUTE] = template  # what :func:`.scopes.route_of` reads
        response = self._respond(request, rule, args, miss)
        self._record(request, response.status_code, received, template)
        return response(environ, start_response)

    def _match(self, request: Request) -> tuple[Rule | None, dict[str, Any], Response | None]:
        """The matching rule and its arguments, or the answer when nothing matches."""
        adapter = self._map.bind_to_environ(request.environ)
        try:
            rule, args = adapter.match(routing_path(request.environ), return_rule=True)
            return rule, args, None
        except (NotFound, RequestRedirect):  # no slash-redirects: providers answer 404
            return None, {}, self.not_found(request)
        except MethodNotAllowed:
            return None, {}, json_response({"message": "Method Not Allowed"}, 405)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _respond(self, request: Request, rule: Rule | None, args: dict[str, Any],
                 miss: Response | None) -> Response:
        fault = self._take_fault(request.path)
        delay = self.latency + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.respond is not None:
            return fault.respond(request)
        if fault is not None and fault.status is not None:
            body = fault.body if fault.body is not None else json.dumps(
                {"message": f"simulated {fault.status}"}).encode()
            return Response(body, status=fault.status, headers=fault.headers or {},
                            content_type=JSON_TYPE)
        response = miss if rule is None else self._handle(request, rule, args)
        return truncated(response) if fault is not None and fault.truncate else response

    @staticmethod
    def _handle(request: Request, rule: Rule, args: dict[str, Any]) -> Response:
        try:
            return rule.endpoint(request, **args)
        except Exception:  # a simulator bug must answer 500, not kill the connection
            log.exception("simulator.handler_failed")
            return json_response({"message": "simulator error"}, 500)

    def _record(self, request: Request, status: int, received: float,
                template: str | None = None) -> None:
        query = {k: "[redacted]" if k.lower() in SENSITIVE_PARAMS else v
                 for k, v in request.args.items()}
        headers = {h: request.headers[h] for h in LOGGED_HEADERS if h in request.headers}
        if "Authorization" in request.headers:
            headers["authorization"] = request.headers["Authorization"].partition(" ")[0]
        entry = LoggedRequest(request.method, request.path, query, headers, status, received,
                              template)
        with self._lock:
            self._log.append(entry)

