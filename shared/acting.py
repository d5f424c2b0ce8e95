"""Which component the current request or message is being handled by.

:mod:`shared.entry` sets it around every handler (``acting_as``); code deep in a shared module
that must publish in the component's own name — a notification recorded by
:mod:`shared.health`, which api, oauth-P, vault-P and fetch-P all call — reads it with
:func:`current`. Outside a handler (a CLI command, a unit test) it is ``None``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("keyway_component",
                                                                     default=None)


def current() -> str | None:
    return _CURRENT.get()


@contextlib.contextmanager
def acting_as(component: str) -> Iterator[None]:
    token = _CURRENT.set(component)
    try:
        yield
    finally:
        _CURRENT.reset(token)
