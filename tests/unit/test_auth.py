"""Bearer-token authentication: good tokens become principals, forged ones all answer 401.

Tokens are signed with real RSA and EC keys; the rotation tests run a real JWKS endpoint on
127.0.0.1 (stdlib ``http.server`` in a thread). Every token a test makes is tracked by the leak
guard, and every rejection is checked for the token in its message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth import (
    SCOPES,
    HttpJwks,
    Principal,
    StaticJwks,
    TokenVerifier,
    Unauthenticated,
)
from shared.errors import Forbidden
from tests.support import FakeClock

ISSUER = "https://keyway-test.eu.auth0.com/"
AUDIENCE = "keyway-api"
TENANT_CLAIM = "https://keyway.dev/tenant"
ROLE_CLAIM = "https://keyway.dev/role"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
NEW_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ---- helpers ---------------------------------------------------------------------------------
def jwk(key: Any, kid: str) -> dict[str, Any]:
    public = key.public_key()
    codec = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    return {**codec.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}


def jwks(*pairs: tuple[Any, str]) -> dict[str, Any]:
    return {"keys": [jwk(key, kid) for key, kid in pairs]}


def claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "auth0|user-1", TENANT_CLAIM: "tenant-a",
            ROLE_CLAIM: "admin", "scope": "connections:read data:read", "iat": now, "nbf": now,
            "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = RSA_KEY, kid: str | None = "rsa-1",
         alg: str = "RS256", **header: Any) -> str:
    headers = {"kid": kid, **header} if kid is not None else header
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def segment(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def hmac_token(secret: bytes, payload: dict[str, Any], kid: str = "rsa-1") -> str:
    """An HS256 token built by hand (PyJWT refuses PEM secrets, an attacker does not)."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class Reasons(logging.Handler):
    """Collects the reason codes of ``auth.rejected`` debug lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.codes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "auth.rejected":
            self.codes.append(record.fields["reason"])


def assert_refused(verifier: TokenVerifier, header: str | None, token: str | None = None,
                   reason: str | None = None) -> None:
    """401 with a generic message that carries no token material and no chained cause,
    refused by the check the test meant (``reason``, from the debug log) when given."""
    logger, reasons = logging.getLogger("shared.auth.verify"), Reasons()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(reasons)
    try:
        with pytest.raises(Unauthenticated) as info:
            verifier.verify(header)
    finally:
        logger.removeHandler(reasons)
        logger.setLevel(level)
    if reason is not None:
        assert reasons.codes == [reason]
    error = info.value
    assert error.status == 401 and error.key == "auth.unauthenticated"
    assert error.__cause__ is None and error.__context__ is None
    for text in (str(error), repr(error), error.detail):
        for secret in filter(None, [header, token, *(token or "").split(".")]):
            if len(secret) >= 8:
                assert secret not in text


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(clock: FakeClock) -> TokenVerifier:
    keys = StaticJwks(jwks((RSA_KEY, "rsa-1"), (EC_KEY, "ec-1")))
    return TokenVerifier(ISSUER, AUDIENCE, keys, clock, tenant_claim=TENANT_CLAIM,
                         role_claim=ROLE_CLAIM)


# ---- good tokens -----------------------------------------------------------------------------
def test_a_good_rs256_token_becomes_a_principal_with_tenant_user_role_and_scopes(
        verifier, clock, leak_guard) -> None:
    token = leak_guard.track(sign(claims(clock)))
    principal = verifier.verify(f"Bearer {token}")
    assert principal == Principal(tenant="tenant-a", user="auth0|user-1", role="admin",
                                  scopes=frozenset({"connections:read", "data:read"}))


def test_a_good_es256_token_with_auth0_permissions_and_an_audience_list_is_accepted(
        verifier, clock, leak_guard) -> None:
    payload = claims(clock, scope=None, aud=[AUDIENCE, f"{ISSUER}userinfo"], **{
        ROLE_CLAIM: "member", "permissions": ["actions:write", "data:read", "repo:admin"]})
    token = leak_guard.track(sign(payload, EC_KEY, "ec-1", "ES256"))
    principal = verifier.verify(f"bearer {token}")
    assert principal.role == "member"
    assert principal.scopes == frozenset({"actions:write", "data:read"})  # unknown ignored


def test_clock_skew_within_the_leeway_is_tolerated(verifier, clock, leak_guard) -> None:
    now = int(clock.now().timestamp())
    token = leak_guard.track(sign(claims(clock, exp=now - 10, nbf=now + 20, iat=now + 20)))
    assert verifier.verify(f"Bearer {token}").tenant == "tenant-a"


def test_principal_requires_scopes_and_the_admin_role() -> None:
    member = Principal("t", "u", "member", frozenset({"data:read"}))
    member.require_scope("data:read")
    with pytest.raises(Forbidden) as scope_error:
        member.require_scope("connections:write")
    assert scope_error.value.key == "auth.insufficient_scope"
    with pytest.raises(Forbidden) as admin_error:
        member.require_admin()
    assert admin_error.value.key == "auth.admin_required"
    Principal("t", "u", "admin", frozenset(SCOPES)).require_admin()
    assert Unauthenticated().status == 401


# ---- forged tokens ---------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
@pytest.mark.parametrize("signature,reason", [("", "malformed_token"),
                                              ("AAAA", "algorithm_not_allowed")])
def test_alg_none_is_refused(verifier, clock, leak_guard, alg, signature, reason) -> None:
    token = leak_guard.track(
        f"{segment({'alg': alg, 'kid': 'rsa-1'})}.{segment(claims(clock))}.{signature}")
    assert_refused(verifier, f"Bearer {token}", token, reason)


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["rsa-public-pem", "ec-public-pem"])
@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_hs256_signed_with_the_public_key_is_refused(verifier, clock, leak_guard, key,
                                                     kid) -> None:
    token = leak_guard.track(hmac_token(public_pem(key), claims(clock), kid))
    assert_refused(verifier, f"Bearer {token}", token, "algorithm_not_allowed")


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS512", "PS256", "ES384", "EdDSA", ""])
def test_every_other_algorithm_is_refused_before_a_key_is_looked_up(clock, leak_guard,
                                                                    alg) -> None:
    class NoLookups:
        def key(self, kid: str) -> Any:
            raise AssertionError("a key was looked up for a disallowed algorithm")

    verifier = TokenVerifier(ISSUER, AUDIENCE, NoLookups(), clock, tenant_claim=TENANT_CLAIM,
                             role_claim=ROLE_CLAIM)
    token = leak_guard.track(f"{segment({'alg': alg, 'kid': 'rsa-1'})}."
                             f"{segment(claims(clock))}.c2lnbmF0dXJl")
    assert_refused(verifier, f"Bearer {token}", token, "algorithm_not_allowed")


def test_a_key_of_the_wrong_type_for_the_algorithm_is_refused(verifier, clock,
                                                              leak_guard) -> None:
    token = leak_guard.track(sign(claims(clock), RSA_KEY, "ec-1", "RS256"))
    assert_refused(verifier, f"Bearer {token}", token, "alg_key_mismatch")


@pytest.mark.parametrize("overrides", [
    {"aud": "other-api"}, {"aud": ["other-api", "second-api"]}, {"aud": None},
    {"aud": [AUDIENCE[:-1]]}, {"aud": 7},
    {"iss": "https://evil.example/"}, {"iss": ISSUER + "x"}, {"iss": ISSUER.rstrip("/")},
    {"iss": None},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_wrong_audience_or_issuer_is_refused(verifier, clock, leak_guard, overrides) -> None:
    token = leak_guard.track(sign(claims(clock, **overrides)))
    reason = "wrong_audience" if "aud" in overrides else "wrong_issuer"
    assert_refused(verifier, f"Bearer {token}", token, reason)


@pytest.mark.parametrize("claim,offset,reason", [
    ("exp", -30, "expired"), ("exp", -3600, "expired"), ("nbf", 31, "not_yet_valid"),
    ("nbf", 3600, "not_yet_valid"), ("iat", 3600, "issued_in_future"),
], ids=lambda v: str(v))
def test_expired_or_not_yet_valid_tokens_are_refused(verifier, clock, leak_guard, claim,
                                                     offset, reason) -> None:
    now = int(clock.now().timestamp())
    token = leak_guard.track(sign(claims(clock, **{claim: now + offset})))
    assert_refused(verifier, f"Bearer {token}", token, reason)


@pytest.mark.parametrize("claim,value,reason", [
    ("exp", None, "missing_exp"), ("exp", "2099-01-01", "invalid_exp"),
    ("exp", True, "invalid_exp"), ("nbf", "soon", "invalid_nbf"),
    ("sub", None, "invalid_sub"), ("sub", "", "invalid_sub"), ("sub", "two words", "invalid_sub"),
    ("sub", 42, "invalid_sub"), (TENANT_CLAIM, None, "invalid_tenant"),
    (TENANT_CLAIM, "", "invalid_tenant"), (TENANT_CLAIM, ["tenant-a"], "invalid_tenant"),
    (ROLE_CLAIM, "owner", "invalid_role"), (ROLE_CLAIM, "Admin", "invalid_role"),
    (ROLE_CLAIM, None, "invalid_role"), (ROLE_CLAIM, ["admin"], "invalid_role"),
    ("scope", ["data:read"], "invalid_scope"), ("permissions", "data:read",
                                                "invalid_permissions"),
], ids=lambda v: repr(v).rsplit("/", 1)[-1])
def test_missing_or_malformed_claims_are_refused(verifier, clock, leak_guard, claim, value,
                                                 reason) -> None:
    payload = {k: v for k, v in claims(clock).items() if k != claim}
    if value is not None:
        payload[claim] = value
    token = leak_guard.track(sign(payload))
    assert_refused(verifier, f"Bearer {token}", token, reason)


def test_unknown_or_missing_kid_is_refused(verifier, clock, leak_guard) -> None:
    unknown = leak_guard.track(sign(claims(clock), kid="rsa-2"))
    missing = leak_guard.track(sign(claims(clock), kid=None))
    empty = leak_guard.track(sign(claims(clock), kid=""))
    assert_refused(verifier, f"Bearer {unknown}", unknown, "unknown_kid")
    for token in (missing, empty):
        assert_refused(verifier, f"Bearer {token}", token, "missing_kid")


def test_a_token_from_an_unknown_signer_reusing_a_known_kid_is_refused(verifier, clock,
                                                                       leak_guard) -> None:
    token = leak_guard.track(sign(claims(clock), NEW_RSA_KEY, "rsa-1"))
    assert_refused(verifier, f"Bearer {token}", token, "bad_signature")


@pytest.mark.parametrize("change", [
    {TENANT_CLAIM: "tenant-b"}, {ROLE_CLAIM: "admin", "sub": "auth0|someone-else"},
    {"scope": " ".join(SCOPES)}, {"exp": 4_000_000_000},
], ids=["tenant", "user", "scopes", "exp"])
@pytest.mark.parametrize("key,kid,alg", [(RSA_KEY, "rsa-1", "RS256"),
                                         (EC_KEY, "ec-1", "ES256")], ids=["rs256", "es256"])
def test_a_tampered_payload_with_the_original_signature_is_refused(
        verifier, clock, leak_guard, change, key, kid, alg) -> None:
    original = leak_guard.track(sign(claims(clock), key, kid, alg))
    verifier.verify(f"Bearer {original}")
    header, _, signature = original.split(".")
    forged = leak_guard.track(f"{header}.{segment(claims(clock, **change))}.{signature}")
    assert_refused(verifier, f"Bearer {forged}", forged, "bad_signature")


@pytest.mark.parametrize("extra,reason", [
    ({"crit": ["exp"]}, "malformed_header"),  # PyJWT itself refuses unknown extensions
    ({"crit": ["b64"], "b64": True}, "critical_header"),  # keyway refuses every extension
])
def test_critical_header_extensions_are_refused(verifier, clock, leak_guard, extra,
                                                reason) -> None:
    signing_input = f"{segment({'alg': 'RS256', 'kid': 'rsa-1', **extra})}.{segment(claims(clock))}"
    token = leak_guard.track(f"{signing_input}.{sign(claims(clock)).split('.')[2]}")
    assert_refused(verifier, f"Bearer {token}", token, reason)


@pytest.mark.parametrize("header,reason", [
    (None, "missing_header"), ("", "missing_header"), ("Bearer", "not_bearer"),
    ("Bearer ", "not_bearer"), ("Basic dXNlcjpwYXNzd29yZA==", "not_bearer"),
    ("Token abc.def.ghi", "not_bearer"), ("Bearer eyJhbGciOiJSUzI1NiJ9.e30 extra", "not_bearer"),
    ("Bearer ...", "malformed_token"), ("Bearer a.b.c.d", "malformed_token"),
    ("Bearer abc.def", "malformed_token"), ("Bearer !!!.@@@.###", "malformed_token"),
    ("Bearer %%%%.^^^^.&&&&", "malformed_token"),
    ("Bearer " + "A" * 9000 + ".e30.AAAA", "malformed_token"),
    ("Bearer Zm9vYmFy.YmF6cXV4.c2lnbmF0dXJl", "malformed_header"),
    ("Bearer eyJhbGciOi.eyJzdWIi.AAAA", "malformed_header"),
    ("Bearer W10.e30.AAAA", "malformed_header"),  # header is a JSON list
], ids=lambda v: repr(v)[:30])
def test_malformed_authorization_headers_are_refused(verifier, header, reason) -> None:
    assert_refused(verifier, header, reason=reason)


def test_a_real_token_after_the_wrong_scheme_is_refused(verifier, clock, leak_guard) -> None:
    token = leak_guard.track(sign(claims(clock)))
    for header in (f"Basic {token}", f"Bearer {token} {token}", token, f"Bearer: {token}"):
        assert_refused(verifier, header, token)


def test_rejections_are_logged_with_a_reason_code_and_never_the_token(
        verifier, clock, leak_guard, caplog) -> None:
    expired = leak_guard.track(sign(claims(clock, exp=int(clock.now().timestamp()) - 100)))
    wrong_aud = leak_guard.track(sign(claims(clock, aud="other")))
    with caplog.at_level(logging.DEBUG, logger="shared.auth.verify"):
        for token in (expired, wrong_aud):
            assert_refused(verifier, f"Bearer {token}", token)
    rejections = [r for r in caplog.records if r.getMessage() == "auth.rejected"]
    assert [r.fields["reason"] for r in rejections] == ["expired", "wrong_audience"]
    assert expired not in caplog.text and wrong_aud not in caplog.text


# ---- JWKS over HTTP: caching, rotation, rate limit, outage ------------------------------------
class JwksServer:
    """A real JWKS endpoint on loopback whose document the test changes; counts requests."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document: Any = document
        self.status = 200
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                server.requests += 1
                body = (server.document if isinstance(server.document, bytes)
                        else json.dumps(server.document).encode())
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def jwks_server():
    server = JwksServer(jwks((RSA_KEY, "rsa-1")))
    yield server
    server.stop()


def http_verifier(server: JwksServer, clock: FakeClock) -> TokenVerifier:
    source = HttpJwks(server.url, requests.Session(), clock, ttl=600, min_refetch_interval=30)
    return TokenVerifier(ISSUER, AUDIENCE, source, clock, tenant_claim=TENANT_CLAIM,
                         role_claim=ROLE_CLAIM)


def long_lived(clock: FakeClock, key: Any = RSA_KEY, kid: str = "rsa-1") -> str:
    return sign(claims(clock, exp=int(clock.now().timestamp()) + 86400), key, kid)


def test_keys_are_fetched_once_and_served_from_the_cache(jwks_server, clock,
                                                         leak_guard) -> None:
    verifier = http_verifier(jwks_server, clock)
    token = leak_guard.track(long_lived(clock))
    for _ in range(5):
        assert verifier.verify(f"Bearer {token}").tenant == "tenant-a"
    assert jwks_server.requests == 1


def test_a_token_signed_by_a_new_key_is_accepted_once_the_issuer_publishes_it(
        jwks_server, clock, leak_guard) -> None:
    verifier = http_verifier(jwks_server, clock)
    old = leak_guard.track(long_lived(clock))
    new = leak_guard.track(long_lived(clock, NEW_RSA_KEY, "rsa-2"))
    verifier.verify(f"Bearer {old}")
    assert_refused(verifier, f"Bearer {new}", new)  # fetched just now: no refetch yet
    assert jwks_server.requests == 1
    clock.advance(31)
    assert_refused(verifier, f"Bearer {new}", new)  # refetched, still not published
    assert jwks_server.requests == 2
    jwks_server.document = jwks((RSA_KEY, "rsa-1"), (NEW_RSA_KEY, "rsa-2"))
    clock.advance(31)
    assert verifier.verify(f"Bearer {new}").user == "auth0|user-1"  # refetched on unknown kid
    assert verifier.verify(f"Bearer {old}").user == "auth0|user-1"
    assert jwks_server.requests == 3


def test_random_kids_cannot_make_us_hammer_the_issuer(jwks_server, clock, leak_guard) -> None:
    verifier = http_verifier(jwks_server, clock)
    verifier.verify(f"Bearer {leak_guard.track(long_lived(clock))}")
    clock.advance(31)
    for _ in range(40):
        token = leak_guard.track(long_lived(clock, kid=uuid.uuid4().hex))
        assert_refused(verifier, f"Bearer {token}", token)
        clock.advance(0.5)  # 20 s in all: still inside one 30 s interval
    assert jwks_server.requests == 2  # the first fetch and one refetch
    clock.advance(30)
    token = leak_guard.track(long_lived(clock, kid=uuid.uuid4().hex))
    assert_refused(verifier, f"Bearer {token}", token)
    assert jwks_server.requests == 3


def test_an_issuer_outage_still_verifies_with_the_cached_key(jwks_server, clock,
                                                             leak_guard) -> None:
    verifier = http_verifier(jwks_server, clock)
    token = leak_guard.track(long_lived(clock))
    verifier.verify(f"Bearer {token}")
    for failure in ("status", "garbage"):
        if failure == "status":
            jwks_server.status = 503
        else:
            jwks_server.status, jwks_server.document = 200, b"<html>maintenance</html>"
        clock.advance(601)  # the cache has expired: a refetch is attempted and fails
        before = jwks_server.requests
        assert verifier.verify(f"Bearer {token}").tenant == "tenant-a"
        assert jwks_server.requests == before + 1
    jwks_server.stop()  # connection refused
    clock.advance(601)
    assert verifier.verify(f"Bearer {token}").tenant == "tenant-a"


def test_keys_the_issuer_removed_stop_verifying_after_the_cache_expires(
        jwks_server, clock, leak_guard) -> None:
    verifier = http_verifier(jwks_server, clock)
    token = leak_guard.track(long_lived(clock))
    verifier.verify(f"Bearer {token}")
    jwks_server.document = jwks((NEW_RSA_KEY, "rsa-2"))
    clock.advance(601)
    assert_refused(verifier, f"Bearer {token}", token)


def test_no_reachable_issuer_and_no_cache_means_unauthenticated(jwks_server, clock,
                                                                leak_guard) -> None:
    jwks_server.stop()
    verifier = http_verifier(jwks_server, clock)
    token = leak_guard.track(long_lived(clock))
    assert_refused(verifier, f"Bearer {token}", token)


def test_only_rs256_and_es256_signing_keys_are_taken_from_a_jwks() -> None:
    weak_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    p384 = ec.generate_private_key(ec.SECP384R1())
    document = jwks((RSA_KEY, "rsa-ok"), (EC_KEY, "ec-ok"), (weak_rsa, "rsa-1024"),
                    (p384, "ec-p384"))
    document["keys"] += [
        {"kty": "oct", "kid": "hmac", "k": b64(b"a shared secret")},
        {**jwk(EC_KEY, "ec-enc"), "use": "enc"},
        {**jwk(RSA_KEY, "rsa-ps"), "alg": "PS256"},
        {**jwk(EC_KEY, "ec-private"), "d": b64(b"\x01" * 32)},
        {k: v for k, v in jwk(RSA_KEY, "x").items() if k != "kid"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
    ]
    assert StaticJwks(document).kids() == {"rsa-ok", "ec-ok"}
    with pytest.raises(ValueError):
        StaticJwks({"not": "a jwks"})
