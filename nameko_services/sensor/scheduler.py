"""A precise scheduler: one heap of (due, seq, key) served by one loop.

The loop sleeps exactly until the earliest due time and is woken early whenever the heap
changes; there is no polling. Replaced and removed entries are dropped lazily when they reach
the top. It uses only `threading` primitives, which `eventlet.monkey_patch()` makes green, so
the loop is one greenthread inside a service and an ordinary thread elsewhere.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

# on_due(key, item, due) → the key's next due time, or None to drop it.
OnDue = Callable[[Hashable, Any, datetime], datetime | None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Keys with a due time and an item; `run(on_due)` calls back as each comes due."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._heap: list[tuple[datetime, int, Hashable]] = []
        self._entries: dict[Hashable, tuple[int, datetime, Any]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stopped = False

    def put(self, key: Hashable, due: datetime, item: Any) -> None:
        """Add or replace the entry of `key`."""
        with self._lock:
            seq = next(self._seq)
            self._entries[key] = (seq, due, item)
            heapq.heappush(self._heap, (due, seq, key))
        self._changed.set()

    def remove(self, key: Hashable) -> None:
        with self._lock:
            found = self._entries.pop(key, None) is not None
        if found:
            self._changed.set()

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        return entry[2] if entry is not None else None

    def due(self, key: Hashable) -> datetime | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None else None

    def keys(self) -> set[Hashable]:
        return set(self._entries)

    def stop(self) -> None:
        self._stopped = True
        self._changed.set()

    def run(self, on_due: OnDue) -> None:
        """Serve the heap until stop(); an on_due that raises drops its key (logged)."""
        while not self._stopped:
            self._changed.clear()  # before looking, so a put() after the look wakes the wait
            top = self._peek()
            if top is None:
                self._changed.wait()
                continue
            delay = (top[0] - self._clock()).total_seconds()
            if delay > 0:
                self._changed.wait(delay)
                continue
            self._fire(top, on_due)

    def _peek(self) -> tuple[datetime, int, Hashable] | None:
        with self._lock:
            while self._heap:
                due, seq, key = self._heap[0]
                entry = self._entries.get(key)
                if entry is not None and entry[0] == seq:
                    return due, seq, key
                heapq.heappop(self._heap)  # replaced or removed
            return None

    def _fire(self, top: tuple[datetime, int, Hashable], on_due: OnDue) -> None:
        due, seq, key = top
        with self._lock:
            heapq.heappop(self._heap)
            item = self._entries[key][2]
        try:
            next_due = on_due(key, item, due)
        except Exception:
            log.exception("scheduled callback for %r failed; dropping it", key)
            next_due = None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != seq:  # replaced or removed meanwhile
                return
            if next_due is None:
                del self._entries[key]
                return
            new_seq = next(self._seq)
            self._entries[key] = (new_seq, next_due, item)
            heapq.heappush(self._heap, (next_due, new_seq, key))
