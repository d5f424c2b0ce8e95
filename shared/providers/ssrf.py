"""SSRF guard for provider base URLs that come from users (GHES, self-hosted GitLab): promise 6.

:func:`check_base_url` accepts ``https://host[:port][/path]`` only — no credentials, query or
fragment — and resolves the host: EVERY address it resolves to must be public. Refused:
private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local (169.254/16 including the
169.254.169.254 metadata service, fe80::/10), multicast, reserved, unspecified (0.0.0.0, ::),
shared address space (100.64/10), documentation and other non-global ranges (so
``2001:db8::/32`` is refused), and IPv6 forms that embed an IPv4 address (IPv4-mapped
``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo) when the embedded address is refused.
Metadata names (``metadata.google.internal``, ``*.internal``) are refused before resolving.
IP literals are checked without resolving; a name that does not resolve is refused.

Local mode (embedded/emulator backends, ``Config.local_mode``) allows loopback addresses so the
provider simulators work, and allows ``http`` — but only when every address is loopback.

DNS rebinding: a check followed by a fresh lookup at connect time is worthless, because the
name can resolve to 10.0.0.1 the second time. A transport must therefore connect to the
addresses :func:`check_host` returned (pinning them, with the original host name kept for
TLS SNI and certificate verification and for the ``Host`` header), and must re-run the check
for every request rather than caching the name: :mod:`shared.http_egress` does both.

Every refusal raises :class:`InvalidInput` with key ``ssrf.refused`` and a message naming the
reason. Messages never repeat the URL itself, so credentials or tokens in it are not echoed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from shared.errors import InvalidInput

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

BLOCKED_NAMES = frozenset({"metadata.google.internal", "metadata", "metadata.goog",
                           "instance-data", "instance-data.ec2.internal"})
BLOCKED_SUFFIXES = (".internal",)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)*/?$")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _refuse(reason: str) -> InvalidInput:
    return InvalidInput(f"base URL refused: {reason}", key="ssrf.refused")


def default_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), via ``socket.getaddrinfo``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None


def address_refusal(ip: IPAddress, *, local_mode: bool) -> str | None:
    """Why ``ip`` may not be contacted, or None when it is a public (or allowed) address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = address_refusal(inner, local_mode=False)
            if reason:
                return f"{reason} (embedded in an IPv6 address)"
    checks = (
        (ip.is_unspecified, "unspecified address"),
        (ip.is_link_local, "link-local address (cloud metadata range)"),
        (ip.is_multicast, "multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "shared address space"),
        (ip.is_reserved, "reserved address"),
        (ip.is_private, "private address"),
        (not ip.is_global, "address that is not globally routable"),
    )
    if ip.is_loopback:
        return None if local_mode else "loopback address (allowed only in local mode)"
    return next((reason for flagged, reason in checks if flagged), None)


def _host(raw: str) -> tuple[str, IPAddress | None]:
    """The lower-cased host and, for an IP literal, its address; refuses odd names."""
    host = raw.lower().rstrip(".")
    try:
        return host, ipaddress.ip_address(host)
    except ValueError:
        pass
    if "%" in host or not all(_LABEL.match(label) for label in host.split(".")):
        raise _refuse("host is not a valid DNS name or IP address")
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", host.rsplit(".", 1)[-1]):
        raise _refuse("host looks like an obfuscated IP address")
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise _refuse("cloud metadata or internal host name")
    return host, None


def _parse(url: str) -> tuple[str, str, IPAddress | None, int | None, str]:
    """``(scheme, host, ip_literal, explicit_port, path)`` of a syntactically acceptable URL."""
    if not isinstance(url, str) or not url or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise _refuse("not a URL (empty, or contains spaces or control characters)")
    if "?" in url or "#" in url:
        raise _refuse("query strings and fragments are not allowed")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _refuse("malformed URL") from None
    if "@" in parts.netloc:
        raise _refuse("credentials in the URL are not allowed")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise _refuse("an absolute https URL is required")
    try:
        port = parts.port
    except ValueError:
        raise _refuse("invalid port") from None
    if port == 0:
        raise _refuse("invalid port")
    if not _PATH.match(parts.path) or any(s in (".", "..") for s in parts.path.split("/")):
        raise _refuse("path may contain only plain segments")
    host, literal = _host(parts.hostname)
    return scheme, host, literal, port, parts.path.rstrip("/")


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        answers = resolve(host, port)
    except (OSError, UnicodeError):
        raise _refuse("host name does not resolve") from None
    if not answers:
        raise _refuse("host name does not resolve")
    try:
        return [ipaddress.ip_address(str(a).split("%", 1)[0]) for a in answers]
    except ValueError:
        raise _refuse("resolver returned an invalid address") from None


def _checked(scheme: str, host: str, literal: IPAddress | None, port: int, local_mode: bool,
             resolve: Resolver | None) -> list[IPAddress]:
    addresses = [literal] if literal is not None else _resolve(host, port,
                                                   resolve or default_resolver)
    for ip in addresses:
        reason = address_refusal(ip, local_mode=local_mode)
        if reason:
            raise _refuse(f"{host} is or resolves to a {reason}")
    if scheme == "http" and not (local_mode and all(ip.is_loopback for ip in addresses)):
        raise _refuse("https is required (http only for loopback in local mode)")
    return addresses


def check_host(scheme: str, host: str, port: int, *, local_mode: bool,
               resolve: Resolver | None = None) -> list[str]:
    """Every address ``host`` resolves to NOW, each one checked, for a transport to connect
    to (:mod:`shared.http_egress` calls this for every request); ``ssrf.refused`` otherwise."""
    if scheme not in _DEFAULT_PORTS:
        raise _refuse("an absolute https URL is required")
    name, literal = _host(host)
    return [ip.compressed for ip in _checked(scheme, name, literal, port, local_mode, resolve)]


def _inspect(url: str, local_mode: bool, resolve: Resolver | None) -> tuple[str, list[str]]:
    """The normalized base URL and the checked addresses it may be reached at."""
    scheme, host, literal, port, path = _parse(url)
    effective_port = port or _DEFAULT_PORTS[scheme]
    addresses = _checked(scheme, host, literal, effective_port, local_mode, resolve)
    shown = f"[{literal.compressed}]" if isinstance(literal, ipaddress.IPv6Address) else host
    netloc = shown if port in (None, _DEFAULT_PORTS[scheme]) else f"{shown}:{port}"
    return f"{scheme}://{netloc}{path}", [ip.compressed for ip in addresses]


def check_base_url(url: str, *, local_mode: bool, resolve: Resolver | None = None) -> str:
    """The normalized ``scheme://host[:port][/path]`` base of ``url``, or :class:`InvalidInput`
    (key ``ssrf.refused``) when it may not be contacted. ``resolve(host, port)`` returns every
    address of ``host`` (default: ``socket.getaddrinfo``); tests inject one."""
    return _inspect(url, local_mode, resolve)[0]


def resolve_checked(url: str, *, local_mode: bool, resolve: Resolver | None = None) -> list[str]:
    """The checked addresses of ``url``'s host, for a transport to pin (see DNS rebinding)."""
    return _inspect(url, local_mode, resolve)[1]
