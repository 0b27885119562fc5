"""The buffered Sealer: its blobs are the plain functions' blobs, and no nonce is handed out
twice: not across batches, not across threads, not across a fork."""

from __future__ import annotations

import os
import threading

import pytest

from orchestrator.crypto.sealing import NONCE_BYTES, DecryptionError, Sealer, header, open_sealed, seal

KEY = bytes(range(32))


def nonce_of(blob: bytes) -> bytes:
    at = header(blob).size
    return blob[at : at + NONCE_BYTES]


def test_blobs_open_either_way_and_bind_their_context() -> None:
    sealer = Sealer(batch=4)
    blob = sealer.seal(KEY, "acme", "k1", b"payload", "event/e1/3")
    assert open_sealed(KEY, blob, "event/e1/3") == b"payload"
    assert sealer.open(KEY, seal(KEY, "acme", "k1", b"other", "event/e1/4"), "event/e1/4") == b"other"
    with pytest.raises(DecryptionError, match="event/e1/4"):
        sealer.open(KEY, blob, "event/e1/4")


def test_nonces_are_unique_across_batches_and_keys() -> None:
    sealer = Sealer(batch=7)
    keys = [bytes([n]) * 32 for n in range(100)]  # more keys than it keeps prepared
    blobs = [sealer.seal(keys[n % 100], "t", "k", str(n).encode(), f"c/{n}") for n in range(1000)]
    assert len({nonce_of(b) for b in blobs}) == 1000
    assert [sealer.open(keys[n % 100], b, f"c/{n}") for n, b in enumerate(blobs)] == [str(n).encode() for n in range(1000)]


def test_threads_never_share_a_nonce() -> None:
    sealer = Sealer(batch=16)
    taken: list[list[bytes]] = [[] for _ in range(4)]

    def take(into: list[bytes]) -> None:
        for _ in range(2000):
            into.append(sealer.nonce())

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [n for into in taken for n in into]
    assert len(every) == len(set(every)) == 8000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_its_parents_buffer() -> None:
    sealer = Sealer(batch=64)
    sealer.nonce()  # the parent's buffer now holds 63 unused nonces
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first nonce and leave at once
        os.write(write, sealer.nonce())
        os._exit(0)
    os.close(write)
    child = os.read(read, NONCE_BYTES)
    os.close(read)
    os.waitpid(pid, 0)
    parent = [sealer.nonce() for _ in range(63)]  # everything the buffer had left
    assert len(child) == NONCE_BYTES and child not in parent
