"""File helpers of the embedded adapters that keep secret material on disk.

``locked_dir`` holds an exclusive ``flock`` on a directory (created 0700) so concurrent writers
take turns; ``write_private`` replaces a file atomically with one created 0600 (temp file,
fsync, ``os.replace``); :class:`Unpicklable` refuses pickling and copying.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from shared.errors import UnavailableError


class Unpicklable:
    """Mixin: instances refuse ``pickle`` and ``copy`` (``TypeError``), saying ``_refusal``."""

    _refusal: ClassVar[str] = "cannot be pickled"

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} {self._refusal}")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} {self._refusal}")


def write_private(target: Path, payload: bytes, unwritable: str, *, stem: str = "") -> None:
    """Atomically replace ``target`` with ``payload``: a temp file ``.<stem>.<random>.tmp``
    beside it (``stem`` defaults to the target's name) created 0600, fsync, ``os.replace``.
    Any ``OSError`` removes the temp file and becomes ``UnavailableError(unwritable)``."""
    tmp = target.with_name(f".{stem or target.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UnavailableError(unwritable) from e


@contextmanager
def locked_dir(directory: Path, unusable: str, *, tighten: bool = False) -> Iterator[None]:
    """Create ``directory`` (0700) if needed and hold an exclusive ``flock`` on it, fsyncing it
    on the way out. ``tighten`` also takes group and other access away from an existing one
    (never loosening it). Failing to open it → ``UnavailableError(unusable)``."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if tighten:
            mode = directory.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(directory, mode & 0o700)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise UnavailableError(unusable) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        os.fsync(fd)
    finally:
        os.close(fd)
