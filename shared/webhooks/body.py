"""Reading a request body under a size cap, without ever reading past it."""

from __future__ import annotations

from typing import Protocol

CHUNK = 64 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def read_capped(stream: Readable, declared: int | None, cap: int) -> bytes | None:
    """The whole body, or ``None`` when it is larger than ``cap`` bytes.

    A declared ``Content-Length`` above the cap is refused before a byte is read. Otherwise the
    stream is read in chunks and at most ``cap + 1`` bytes in total: one byte past the cap
    proves the body too large, and the rest of it is never read (nor buffered).
    """
    if declared is not None and declared > cap:
        return None
    chunks: list[bytes] = []
    total = 0
    while total <= cap:
        chunk = stream.read(min(CHUNK, cap + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return None if total > cap else b"".join(chunks)
