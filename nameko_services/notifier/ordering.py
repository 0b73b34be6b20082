"""Per-entity FIFO serialisation of forwarding.

nameko runs event handlers concurrently (up to max_workers), so two transitions of one execution
could overtake each other while a handler waits on the database or the broker. Each handler takes
its entity's lock *before its first I/O*; locks are granted in request order, so news about one
entity leaves in the order it arrived while different entities proceed in parallel.

Under `nameko run` (monkey-patched) `threading.Lock` is eventlet's green lock, a FIFO semaphore
that also refuses barging while others wait; in plain threads it is still mutual exclusion.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KeyedFifoLocks:
    """A lock per key, created on first use and forgotten when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Run the block while holding `key`'s lock (FIFO among waiters of the same key)."""
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
