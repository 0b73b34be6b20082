"""Notifications leave in batches: one broadcast message carries every notification that was
ready while the previous one was being published.

Under load this turns one publish (and one delivery to every gateway process) per notification
into one per batch; when idle a batch is a single notification and nothing waits. A handler
returns only once the batch holding its notification is confirmed by the broker, so the news
it consumed is acknowledged after its notification left, as before batching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from nameko.extensions import DependencyProvider

from ..domain import messages as m


class _Entry:
    """One submitted item: done once its batch is flushed (with the flush's error, if any)."""

    __slots__ = ("done", "error", "item")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = threading.Event()
        self.error: BaseException | None = None


class Batcher:
    """Group commit for publishing: the first caller to find no flush running flushes what is
    pending, batch after batch, until nothing is; everyone else waits for theirs."""

    def __init__(self, flush: Callable[[list[Any]], None]) -> None:
        self._flush = flush
        self._pending: list[_Entry] = []
        self._flushing = False

    def submit(self, *items: Any) -> None:
        """Hand `items` to the next batch, in order; return once they are flushed (raise what
        the flush raised)."""
        entries = [_Entry(item) for item in items]
        self._pending.extend(entries)
        if not self._flushing:
            self._flushing = True
            try:
                while self._pending:
                    batch, self._pending = self._pending, []
                    self._flush_batch(batch)
            finally:
                self._flushing = False
        for entry in entries:
            entry.done.wait()
            if entry.error is not None:
                raise entry.error

    def _flush_batch(self, batch: list[_Entry]) -> None:
        try:
            self._flush([entry.item for entry in batch])
        except Exception as error:
            for entry in batch:
                entry.error = error
        for entry in batch:
            entry.done.set()


class Broadcast(DependencyProvider):
    """`broadcast(*payloads)`: publish NOTIFICATION_PUBLISHED payloads to every gateway, in
    order, batched as `{"notifications": [payload, …]}`."""

    def setup(self) -> None:
        from ..green import Publisher

        publish = Publisher(self.container.config)
        self.batcher = Batcher(
            lambda payloads: publish(m.NOTIFIER, m.NOTIFICATION_PUBLISHED,
                                     {"notifications": payloads}))

    def get_dependency(self, worker_ctx: Any) -> Callable[..., None]:
        return self.batcher.submit
