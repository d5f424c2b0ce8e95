"""A route of the ingest routing table: which connections an event reaches (its scope) and the
normalizer that turns it into changes for each of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.ingest.event import Event, Normalizer, Scope


def _always(event: Event) -> str | None:
    return None


@dataclass(frozen=True)
class Route:
    """``scope`` ``repository``: targets are found from the payload's repository/project and
    the normalizer gets a context with that repository; ``installation``: targets are the
    connections of the payload's installation (context without a repository).

    ``skip`` returns a reason to acknowledge and ignore an event of a known type that keyway
    does not keep (a GitLab comment on a commit or a snippet), else ``None``.
    """

    scope: Scope
    normalize: Normalizer
    skip: Callable[[Event], str | None] = _always
