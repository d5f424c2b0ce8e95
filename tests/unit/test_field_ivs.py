"""Field-encryption IVs are drawn from the OS a block at a time (shared/crypto/_ivs.py): each
one is handed out once — across threads, across blocks and across a fork."""

from __future__ import annotations

import os
import threading

from shared.crypto import _ivs
from shared.crypto._aead import IV_SIZE


def test_ivs_are_never_handed_out_twice_across_threads_and_blocks() -> None:
    per_thread, threads = 3 * _ivs.BLOCK, 8
    drawn: list[list[bytes]] = [[] for _ in range(threads)]

    def draw(out: list[bytes]) -> None:
        for _ in range(per_thread):
            out.append(_ivs.take())

    workers = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    every = [iv for out in drawn for iv in out]
    assert len(every) == per_thread * threads
    assert all(type(iv) is bytes and len(iv) == IV_SIZE for iv in every)
    assert len(set(every)) == len(every)


def test_a_forked_child_never_draws_the_ivs_its_parent_draws() -> None:
    _ivs.take()  # a block is loaded: the child inherits its unused remainder
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next IVs and leave at once
        try:
            os.write(write, b"".join(_ivs.take() for _ in range(8)))
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while len(child) < 8 * IV_SIZE:
        chunk = os.read(read, 1024)
        if not chunk:
            break
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    parent = [_ivs.take() for _ in range(8)]
    theirs = {child[i:i + IV_SIZE] for i in range(0, len(child), IV_SIZE)}
    assert len(theirs) == 8
    assert theirs.isdisjoint(parent)
