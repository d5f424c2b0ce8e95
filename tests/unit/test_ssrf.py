"""Promise 6: user-supplied provider base URLs are https and reach only public addresses;
loopback (and http to it) only in local mode. DNS is injected: this machine has none."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.providers import ssrf

PUBLIC_V4, PUBLIC_V6 = "93.184.216.34", "2606:4700::1111"


def answers(*addresses: str):
    """A resolver that answers every name with ``addresses`` and records what it was asked."""
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(addresses)

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def unresolvable(host: str, port: int) -> list[str]:
    raise OSError("no such host")


def refusal(url: str, *, local_mode: bool = False, resolve=None) -> str:
    with pytest.raises(InvalidInput) as caught:
        ssrf.check_base_url(url, local_mode=local_mode, resolve=resolve or answers(PUBLIC_V4))
    assert caught.value.key == "ssrf.refused"
    assert caught.value.status == 400
    return caught.value.detail


@pytest.mark.parametrize("url,reason", [
    ("https://169.254.169.254", "link-local"),
    ("https://169.254.169.254/computeMetadata/v1", "link-local"),
    ("http://gitlab.example.com", "https is required"),
    ("https://10.0.0.1", "private"),
    ("https://172.16.5.4", "private"),
    ("https://192.168.1.1", "private"),
    ("https://127.0.0.1", "loopback"),
    ("https://[::1]", "loopback"),
    ("https://[::ffff:10.0.0.1]", "private"),
    ("https://[::ffff:169.254.169.254]", "link-local"),
    ("https://[64:ff9b::a00:1]", "private"),
    ("https://[2002:a00:1::1]", "private"),
    ("https://[fc00::1]", "private"),
    ("https://[fe80::1]", "link-local"),
    ("https://0.0.0.0", "unspecified"),
    ("https://[::]", "unspecified"),
    ("https://100.64.0.1", "shared address space"),
    ("https://224.0.0.1", "multicast"),
    ("https://240.0.0.1", "reserved"),
    ("https://[2001:db8::1]", "private"),  # documentation range: never globally routable
    ("https://198.51.100.7", "private"),
    ("https://metadata.google.internal", "metadata"),
    ("https://metadata.google.internal.", "metadata"),
    ("https://build.c.my-project.internal", "metadata"),
    ("https://0x7f.0x0.0x0.0x1", "obfuscated"),
    ("https://2130706433", "obfuscated"),
    ("ftp://gitlab.example.com", "https URL is required"),
    ("https://gitlab.example.com?x=1", "query"),
    ("https://gitlab.example.com/#frag", "fragments"),
    ("https://gitlab.example.com/a/../b", "path"),
    ("https://gitlab.example.com:0", "port"),
    ("https://gitlab.example.com:99999", "port"),
    ("https:// gitlab.example.com", "not a URL"),
    ("", "not a URL"),
])
def test_unsafe_base_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    assert reason in refusal(url)


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    assert "private address" in refusal("https://gitlab.example.com", resolve=answers("10.0.0.1"))


def test_a_name_resolving_to_a_public_and_a_private_address_is_refused() -> None:
    mixed = answers(PUBLIC_V4, "10.0.0.1")
    assert "private address" in refusal("https://gitlab.example.com", resolve=mixed)


def test_a_name_resolving_to_the_metadata_service_is_refused() -> None:
    detail = refusal("https://innocent.example.com", resolve=answers("169.254.169.254"))
    assert "link-local" in detail


def test_a_name_that_does_not_resolve_is_refused() -> None:
    assert "does not resolve" in refusal("https://nowhere.example.com", resolve=unresolvable)
    assert "does not resolve" in refusal("https://nowhere.example.com", resolve=answers())


def test_a_resolver_answering_garbage_is_refused() -> None:
    assert "invalid address" in refusal("https://x.example.com", resolve=answers("not-an-ip"))


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    detail = refusal("https://user:hunter2@gitlab.example.com")
    assert "credentials" in detail and "hunter2" not in detail and "user" not in detail


def test_a_public_https_host_is_accepted_and_normalized() -> None:
    resolve = answers(PUBLIC_V4, PUBLIC_V6)
    assert ssrf.check_base_url("https://GitLab.Example.com/", local_mode=False,
                               resolve=resolve) == "https://gitlab.example.com"
    assert resolve.asked == [("gitlab.example.com", 443)]


def test_a_path_and_a_non_default_port_are_kept() -> None:
    resolve = answers(PUBLIC_V4)
    base = ssrf.check_base_url("https://git.example.com:8443/gitlab/", local_mode=False,
                               resolve=resolve)
    assert base == "https://git.example.com:8443/gitlab"
    assert resolve.asked == [("git.example.com", 8443)]
    assert ssrf.check_base_url("https://git.example.com:443", local_mode=False,
                               resolve=resolve) == "https://git.example.com"


def test_a_public_ip_literal_is_accepted_without_resolving() -> None:
    resolve = answers("10.0.0.1")
    assert ssrf.check_base_url(f"https://[{PUBLIC_V6}]", local_mode=False,
                               resolve=resolve) == f"https://[{PUBLIC_V6}]"
    assert ssrf.check_base_url(f"https://{PUBLIC_V4}", local_mode=False,
                               resolve=resolve) == f"https://{PUBLIC_V4}"
    assert resolve.asked == []


def test_http_loopback_is_accepted_only_in_local_mode() -> None:
    url = "http://127.0.0.1:8443"
    assert ssrf.check_base_url(url, local_mode=True) == url
    assert "loopback" in refusal(url, local_mode=False)


def test_https_loopback_is_accepted_only_in_local_mode() -> None:
    assert ssrf.check_base_url("https://[::1]:9443", local_mode=True) == "https://[::1]:9443"
    assert "loopback" in refusal("https://[::1]:9443", local_mode=False)


def test_a_name_resolving_to_loopback_works_in_local_mode_over_http() -> None:
    resolve = answers("127.0.0.1", "::1")
    url = "http://localhost:9000"
    assert ssrf.check_base_url(url, local_mode=True, resolve=resolve) == url
    assert "loopback" in refusal(url, local_mode=False, resolve=resolve)


def test_local_mode_allows_http_only_for_loopback() -> None:
    detail = refusal("http://gitlab.example.com", local_mode=True)
    assert "https is required" in detail
    mixed = answers("127.0.0.1", PUBLIC_V4)
    assert "https is required" in refusal("http://sim.example.com", local_mode=True,
                                          resolve=mixed)


def test_local_mode_still_refuses_private_and_metadata_addresses() -> None:
    assert "private" in refusal("https://10.0.0.1", local_mode=True)
    assert "link-local" in refusal("https://169.254.169.254", local_mode=True)


def test_resolve_checked_returns_the_addresses_a_transport_must_pin() -> None:
    resolve = answers(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)
    addresses = ssrf.resolve_checked("https://gitlab.example.com", local_mode=False,
                                     resolve=resolve)
    assert addresses == [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]
    with pytest.raises(InvalidInput):
        ssrf.resolve_checked("https://gitlab.example.com", local_mode=False,
                             resolve=answers("10.0.0.1"))


def test_the_default_resolver_is_not_consulted_for_ip_literals() -> None:
    assert ssrf.check_base_url("https://1.1.1.1", local_mode=False) == "https://1.1.1.1"
