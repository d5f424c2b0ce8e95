"""The one door every token-bearing request leaves through (promises 6 and 9).

:func:`harden` mounts :class:`PinnedAdapter` on a ``requests.Session`` for ``http://`` and
``https://``. Every client that sends a secret — the token endpoint (code exchange, refresh,
revocation: :class:`shared.vault.oauth.OAuthTokenClient`), GitHub App installation tokens
(:class:`shared.vault.github_app.InstallationTokenMinter`) and every provider API call,
post-connect lookups and ``whoami`` included (:class:`shared.fetch.client.ProviderClient`) —
hardens the session it is given in its constructor, so no call site can forget it.

For each request the adapter:

1. resolves the URL's host once, here, and checks EVERY address with
   :func:`shared.providers.ssrf.check_host` (no private, loopback outside local mode,
   link-local/metadata, IPv4-mapped or other non-global address; http only to loopback in
   local mode). A refusal raises :class:`AddressRefused` (``ssrf.refused``) before anything is
   sent. The decision is made at every use — connect, code exchange, refresh, revocation, API
   calls — never cached from an earlier check;
2. connects to exactly one checked address (the first IPv4 one, else the first) — urllib3
   is given the address as the pool's host, so it never resolves the name again (no DNS
   rebinding window) — while TLS still sends the host name as SNI and verifies the
   certificate for the name (``server_hostname`` / ``assert_hostname``), and the ``Host``
   header keeps the name. Pools are keyed by the checked address, so a kept-alive connection
   is only reused for the address it was checked for;
3. refuses any redirect answer (300, 301, 302, 303, 305, 307, 308): the response is closed and
   :class:`RedirectRefused` (``provider.redirect_refused``) raised, so the ``Location`` is
   never contacted and a form carrying a client secret, code, verifier or refresh token is
   never re-sent. ``304 Not Modified`` is not a redirect and passes.

Proxies are never used (``trust_env`` off, ``proxies`` ignored): a proxy would resolve the name
itself and undo the pinning. With ``trust_env`` off, requests reads no environment on a request:
not ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` (``merge_environment_settings``),
not netrc, not ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``. No setting turns proxies on (a
deployment that needs an egress proxy must be given one that keeps these checks; there is
none today). The notification sender (:mod:`shared.notify.send`) uses
:func:`egress_session` too. Neither error carries a URL, a ``Location`` or a body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from shared.errors import InvalidInput, PermanentError
from shared.log import get_logger
from shared.providers import ssrf

log = get_logger("keyway.egress")

REDIRECTS = frozenset({300, 301, 302, 303, 305, 307, 308})
_PORTS = {"https": 443, "http": 80}


class EgressBlocked(PermanentError):
    """A token-bearing request that was stopped by the egress door (never retried)."""

    status = 502


class RedirectRefused(EgressBlocked):
    key, title = "provider.redirect_refused", "The provider answered with a redirect"


class AddressRefused(EgressBlocked):
    key, title = "ssrf.refused", "The provider host resolves to an address keyway may not contact"


class PinnedAdapter(HTTPAdapter):
    """Checks the resolved addresses at every request, connects to a checked one, refuses
    redirects (see the module docstring)."""

    def __init__(self, *, local_mode: bool, resolve: ssrf.Resolver | None = None) -> None:
        self.local_mode, self._resolve = local_mode, resolve
        super().__init__()

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        response = super().send(request, stream=stream, timeout=timeout, verify=verify,
                                cert=cert, proxies=None)
        if response.status_code in REDIRECTS:
            response.close()
            host = urlsplit(request.url or "").hostname
            log.warning("provider.redirect_refused", extra={"fields": {
                "host": host, "status": response.status_code, "method": request.method}})
            raise RedirectRefused(f"the provider answered {response.status_code} (a redirect); "
                                  "token-bearing requests never follow redirects")
        return response

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: Any,
                                        proxies: Any = None, cert: Any = None) -> Any:
        parts = urlsplit(request.url or "")
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or _PORTS.get(scheme, 0)
        try:
            addresses = ssrf.check_host(scheme, host, port, local_mode=self.local_mode,
                                        resolve=self._resolve)
        except InvalidInput as e:
            log.warning("egress.address_refused", extra={"fields": {"reason": e.detail}})
            raise AddressRefused(e.detail) from None
        address = next((a for a in addresses if ":" not in a), addresses[0])
        _, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if scheme == "https":  # SNI and the certificate check are for the name, not the address
            pool_kwargs.update(server_hostname=host, assert_hostname=host)
        request.headers["Host"] = parts.netloc.rpartition("@")[2]
        return self.poolmanager.connection_from_host(address, port, scheme,
                                                     pool_kwargs=pool_kwargs)


def harden(session: requests.Session, *, local_mode: bool | None = None,
           resolve: ssrf.Resolver | None = None) -> requests.Session:
    """``session`` with :class:`PinnedAdapter` mounted (idempotent; returns it). A session
    already hardened keeps its adapter (and the resolver a test injected); one hardened for
    the other mode is refused rather than silently loosened or tightened."""
    if local_mode is None:  # the process's backend: loopback only on embedded/emulator
        from shared.bootstrap import environment_config

        local_mode = environment_config().local_mode
    current = session.get_adapter("https://example.invalid/")
    if isinstance(current, PinnedAdapter):
        if current.local_mode != local_mode:
            raise ValueError("this session is already pinned for the other backend mode")
        return session
    adapter = PinnedAdapter(local_mode=local_mode, resolve=resolve)
    session.trust_env = False
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def egress_session(*, local_mode: bool | None = None,
                   resolve: ssrf.Resolver | None = None) -> requests.Session:
    """A new hardened session."""
    return harden(requests.Session(), local_mode=local_mode, resolve=resolve)
