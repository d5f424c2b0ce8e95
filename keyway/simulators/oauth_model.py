"""The vocabulary of the simulators' OAuth server: users, clients, how a provider issues
credentials, what an issued token stands for, and the provider-neutral error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class OAuthError(Exception):
    """An OAuth failure in provider-neutral terms (see the module docstring)."""

    def __init__(self, error: str, description: str, reason: str = "") -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.reason = error, description, reason


@dataclass(frozen=True)
class Account:
    """The simulated signed-in user (GitHub ``login``, GitLab ``username``)."""

    login: str
    id: int
    name: str


@dataclass(frozen=True)
class Client:
    """A registered OAuth application."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenPolicy:
    """How a provider issues credentials. ``access_ttl`` None: tokens never expire;
    ``refresh_token`` None: no refresh tokens (GitHub OAuth Apps)."""

    access_token: Callable[[], str]
    code: Callable[[], str]
    refresh_token: Callable[[], str] | None = None
    access_ttl: int | None = None
    refresh_ttl: int | None = None
    code_ttl: int = 600
    redirect_uri_required: bool = False  # GitLab: at authorize and at the token endpoint
    response_type_required: bool = False  # GitLab: ``response_type=code``
    rotate_refresh: bool = True  # False (Bitbucket): a refresh keeps the same refresh token


@dataclass(frozen=True)
class TokenInfo:
    """What an issued access token stands for."""

    client_id: str
    account: Account
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float | None
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Issued:
    """The result of a successful token request."""

    access_token: str = field(repr=False)
    info: TokenInfo
    refresh_token: str | None = field(default=None, repr=False)
