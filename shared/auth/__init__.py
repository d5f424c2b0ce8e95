"""API authentication: OAuth2 bearer JWTs (RS256/ES256) from the configured issuer.

* :mod:`shared.auth.principal` — :class:`Principal`, scopes, roles, :class:`Unauthenticated`;
* :mod:`shared.auth.jwks` — public keys by ``kid``: :class:`HttpJwks` (cached, rotation-aware,
  rate-limited refetch) and :class:`StaticJwks`;
* :mod:`shared.auth.verify` — :class:`TokenVerifier`, ``Authorization`` header → principal;
* :mod:`shared.auth.local_issuer` — :class:`LocalIssuer`, the local-mode token issuer.
"""

from shared.auth.jwks import HttpJwks, JwksSource, StaticJwks
from shared.auth.local_issuer import LocalIssuer
from shared.auth.principal import ROLES, SCOPES, Principal, Role, Unauthenticated
from shared.auth.verify import TokenVerifier

__all__ = [
    "ROLES",
    "SCOPES",
    "HttpJwks",
    "JwksSource",
    "LocalIssuer",
    "Principal",
    "Role",
    "StaticJwks",
    "TokenVerifier",
    "Unauthenticated",
]
