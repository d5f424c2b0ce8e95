"""Jira's dynamic webhooks of an OAuth 2.0 app arrive with ``Authorization: Bearer <JWT>``,
HS256-signed with the app's client secret: ``webhook-jira`` accepts exactly those (current or
previous client secret, ``exp``/``iat`` with a 60 s leeway) at its app-level path and refuses
every other token with the pipeline's stable keys — and never lets the token or the secret
reach a log or an error."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets

import jwt
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared import policy
from shared.bootstrap import build
from shared.config import Config
from shared.errors import ConfigError
from shared.topology import subscription_specs
from shared.webhooks import signatures
from shared.webhooks.errors import Unauthorized
from shared.webhooks.pipeline import Receiver
from tests.support import FakeClock

BODY = b'{"webhookEvent":"jira:issue_updated","matchedWebhookIds":[10000]}'
LEEWAY = signatures.JWT_LEEWAY_SECONDS


@dataclasses.dataclass
class Hooks:
    ports: object
    clock: FakeClock
    secret: bytes
    receiver: Receiver
    track: object

    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def token(self, secret: bytes | None = None, algorithm: str = "HS256",
              **claims: object) -> str:
        body = {"iat": self.now(), "exp": self.now() + 180, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return self.track(jwt.encode(body, secret or self.secret, algorithm=algorithm))

    def post(self, token: str | None = None, *, path: str = "/", body: bytes = BODY,
             **headers: str):
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers.setdefault("X-Atlassian-Webhook-Identifier", secrets.token_hex(8))
        request = Request(EnvironBuilder(path=path, method="POST", data=body,
                                         headers=headers).get_environ())
        return self.receiver(self.ports, request)

    def refused(self, token: str | None = None, **kwargs) -> str:
        """The key of the 401; nothing was published or claimed for it."""
        before = (len(self.published()), len(self.ports.business.query("webhook_deliveries")))
        with pytest.raises(Unauthorized) as caught:
            self.post(token, **kwargs)
        assert (len(self.published()),
                len(self.ports.business.query("webhook_deliveries"))) == before
        return caught.value.key

    def published(self) -> list[dict]:
        got = self.ports.bus.peek(policy.subscription_name("events-jira"), 50)
        return [json.loads(m.data) for m in got]


@pytest.fixture
def hooks(tmp_path, leak_guard) -> Hooks:
    clock = FakeClock()
    ports = dataclasses.replace(
        build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")})), clock=clock)
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    secret = leak_guard.track(secrets.token_urlsafe(48).encode())
    ports.secrets.add_version("jira-client-secret", secret)
    return Hooks(ports, clock, secret, Receiver("jira"), leak_guard.track)


def forged(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A token built by hand (what PyJWT would refuse to produce, such as ``alg: none``)."""
    def part(value: dict | bytes) -> str:
        raw = json.dumps(value).encode() if isinstance(value, dict) else value
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{part(header)}.{part(claims)}.{part(signature)}"


def test_a_token_signed_with_the_client_secret_is_accepted_and_says_so(hooks):
    response = hooks.post(hooks.token())
    assert (response.status_code, response.get_json()) == (202, {"status": "accepted"})
    (message,) = hooks.published()
    assert message["verified_by"] == "client_secret_jwt" and message["connection"] is None
    assert message["payload"]["matchedWebhookIds"] == [10000]


def test_without_an_authorization_header_or_signature_the_delivery_is_refused(hooks):
    assert hooks.refused() == "webhook.jira.missing_signature"
    assert hooks.refused(**{"Authorization": "Basic dXNlcjpwYXNz"}) == (
        "webhook.jira.missing_signature")
    assert hooks.refused(**{"Authorization": "Bearer "}) == "webhook.jira.missing_signature"


def test_a_token_signed_by_another_app_is_refused(hooks):
    stranger = hooks.track(secrets.token_urlsafe(48).encode())
    assert hooks.refused(hooks.token(stranger)) == "webhook.jira.invalid_signature"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_hs256_is_accepted_even_under_the_right_secret(hooks, algorithm):
    assert hooks.refused(hooks.token(algorithm=algorithm)) == "webhook.jira.invalid_signature"


def test_an_unsigned_alg_none_token_is_refused(hooks):
    claims = {"iat": hooks.now(), "exp": hooks.now() + 180}
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"typ": "JWT"}):
        assert hooks.refused(forged(header, claims)) == "webhook.jira.invalid_signature"


def test_a_token_whose_header_lies_about_its_algorithm_is_refused(hooks):
    claims = {"iat": hooks.now(), "exp": hooks.now() + 180}
    head = forged({"alg": "RS256", "typ": "JWT"}, claims).rsplit(".", 1)[0]
    mac = hmac.new(hooks.secret, head.encode(), hashlib.sha256).digest()
    token = hooks.track(f"{head}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}")
    assert hooks.refused(token) == "webhook.jira.invalid_signature"


def test_a_tampered_claim_breaks_the_signature(hooks):
    header, _, signature = hooks.token().split(".")
    later = forged({}, {"iat": hooks.now(), "exp": hooks.now() + 86400}).split(".")[1]
    assert hooks.refused(f"{header}.{later}.{signature}") == "webhook.jira.invalid_signature"


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "ü.ö.ä", "x" * 9000])
def test_garbage_is_refused(hooks, garbage):
    assert hooks.refused(garbage) == "webhook.jira.invalid_signature"


def test_an_expired_token_is_refused_after_the_leeway(hooks):
    stale = hooks.token(iat=hooks.now() - 600, exp=hooks.now() - LEEWAY - 1)
    assert hooks.refused(stale) == "webhook.jira.stale_timestamp"
    assert hooks.post(hooks.token(iat=hooks.now() - 300,
                                  exp=hooks.now() - LEEWAY + 5)).status_code == 202


def test_a_token_valid_for_ten_years_is_refused(hooks):
    """Signed with the right secret and current, but a lifetime no per-delivery token needs."""
    decade = hooks.token(iat=hooks.now(), exp=hooks.now() + 10 * 365 * 86400)
    assert hooks.refused(decade) == "webhook.jira.token_lifetime"
    just_over = hooks.token(exp=hooks.now() + signatures.JWT_MAX_LIFETIME_SECONDS + 1)
    assert hooks.refused(just_over) == "webhook.jira.token_lifetime"
    backwards = hooks.token(iat=hooks.now(), exp=hooks.now() - 1)
    assert hooks.refused(backwards) == "webhook.jira.token_lifetime"


def test_a_token_issued_too_long_ago_is_refused_even_before_its_exp(hooks):
    """The token does not cover the body: its age, not its exp, bounds a replay."""
    age = signatures.JWT_MAX_AGE_SECONDS + LEEWAY
    old = hooks.token(iat=hooks.now() - age - 1, exp=hooks.now() + 600)
    assert hooks.refused(old) == "webhook.jira.stale_timestamp"
    assert hooks.post(hooks.token(iat=hooks.now() - age + 5,
                                  exp=hooks.now() + 600)).status_code == 202


def test_a_token_with_the_longest_allowed_lifetime_is_still_accepted(hooks):
    token = hooks.token(exp=hooks.now() + signatures.JWT_MAX_LIFETIME_SECONDS)
    assert hooks.post(token).status_code == 202


def test_a_token_issued_in_the_future_is_refused(hooks):
    early = hooks.token(iat=hooks.now() + LEEWAY + 30, exp=hooks.now() + 600)
    assert hooks.refused(early) == "webhook.jira.stale_timestamp"


@pytest.mark.parametrize("claims", [{"exp": None}, {"iat": None}, {"exp": "tomorrow"},
                                    {"iat": True}])
def test_a_token_without_numeric_exp_and_iat_is_refused(hooks, claims):
    assert hooks.refused(hooks.token(**claims)) == "webhook.jira.invalid_signature"


def test_the_token_does_not_cover_the_body(hooks):
    """Jira's JWT authenticates the sender, not the bytes: the same token verifies any body
    (TLS protects the request in transit); this is why it is checked for freshness."""
    token = hooks.token()
    assert hooks.post(token, body=b'{"webhookEvent":"comment_created"}').status_code == 202


def test_during_a_client_secret_rotation_both_verify_and_after_it_only_the_new(hooks):
    old, new = hooks.secret, hooks.track(secrets.token_urlsafe(48).encode())
    hooks.ports.secrets.add_version("jira-client-secret-previous", old)
    hooks.ports.secrets.add_version("jira-client-secret", new)
    hooks.clock.advance(3600)  # past the cache: the new values are read
    assert hooks.post(hooks.token(old)).status_code == 202
    assert hooks.post(hooks.token(new)).status_code == 202
    hooks.ports.secrets.delete("jira-client-secret-previous")
    hooks.clock.advance(3600)
    assert hooks.refused(hooks.token(old)) == "webhook.jira.invalid_signature"


def test_a_token_is_not_accepted_on_a_connections_path(hooks):
    hooks.ports.secrets.add_version("webhook-secret-c-1", hooks.track(b"per-connection-secret"))
    assert hooks.refused(hooks.token(), path="/c/c-1") == "webhook.jira.missing_signature"


def test_an_admin_webhooks_hmac_signature_still_verifies_and_wins(hooks):
    webhook_secret = hooks.track(b"jira-admin-webhook-secret")
    hooks.ports.secrets.add_version("jira-webhook-secret", webhook_secret)
    signature = "sha256=" + hmac.new(webhook_secret, BODY, hashlib.sha256).hexdigest()
    response = hooks.post(None, **{"X-Hub-Signature": signature,
                                   "Authorization": "Bearer not-even-a-token"})
    assert response.status_code == 202
    assert hooks.published()[0]["verified_by"] == "hmac_sha256_hex"


def test_without_the_client_secret_configured_it_is_a_configuration_error(hooks):
    hooks.ports.secrets.delete("jira-client-secret")
    hooks.clock.advance(3600)
    with pytest.raises(ConfigError) as caught:
        hooks.post(hooks.token())
    assert caught.value.key == "webhook.jira.secret_missing"


def test_neither_the_token_nor_the_secret_reaches_a_log_or_an_error(hooks, caplog):
    stranger = hooks.track(secrets.token_urlsafe(48).encode())
    token = hooks.token(stranger)
    with caplog.at_level(logging.DEBUG), pytest.raises(Unauthorized) as caught:
        hooks.post(token)
    text = f"{caught.value!s} {caught.value!r} {caught.value.detail}"
    assert token not in text and hooks.secret.decode() not in text
    assert all(token not in r.getMessage() for r in caplog.records)
