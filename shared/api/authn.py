"""The API's token verifier, built once per instance from configuration.

Production: the configured issuer's JWKS over HTTPS (``KEYWAY_AUTH_JWKS_URL``, default
``<issuer>/.well-known/jwks.json``). Local mode without a JWKS URL: the local issuer's keys from
the state directory, so ``keyway dev token`` output is accepted.
"""

from __future__ import annotations

import functools

import requests

from shared.auth.jwks import HttpJwks, StaticJwks
from shared.auth.local_issuer import LocalIssuer
from shared.auth.verify import TokenVerifier
from shared.config import Config
from shared.ports import Clock


def local_issuer(config: Config, clock: Clock) -> LocalIssuer:
    return LocalIssuer(config.state_dir, config.auth_issuer, config.auth_audience, clock,
                       tenant_claim=config.auth_tenant_claim, role_claim=config.auth_role_claim)


class _LocalJwks:
    """The local issuer's current public keys (re-read so a rotation is seen at once)."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self._issuer = issuer

    def key(self, kid: str):
        return StaticJwks(self._issuer.jwks()).key(kid)


@functools.cache
def verifier(config: Config, clock: Clock) -> TokenVerifier:
    if config.local_mode and not config.auth_jwks_url:
        jwks = _LocalJwks(local_issuer(config, clock))
    else:
        url = config.auth_jwks_url or f"{config.auth_issuer.rstrip('/')}/.well-known/jwks.json"
        jwks = HttpJwks(url, requests.Session(), clock)
    return TokenVerifier(config.auth_issuer, config.auth_audience, jwks, clock,
                         tenant_claim=config.auth_tenant_claim, role_claim=config.auth_role_claim)
