"""Coalescing of high-frequency news (rule.triggered), so a busy rule cannot flood clients.

Per key: the first item in a quiet period goes out at once (count 1); items arriving within the
following window are held and counted, and when the window ends one message stands for all of
them (the latest item, with `count`). So at most one message per key per window, none lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 1.0


@dataclass(slots=True)
class _Window:
    until: float
    pending: int = 0
    last: Any = None
    flush_scheduled: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with an offered item: send it now, or flush the key after `flush_in` s."""

    send_now: bool
    flush_in: float | None = None


class Coalescer:
    """Leading edge at once, then at most one (counted) message per key per window."""

    def __init__(self, window: float = DEFAULT_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[Any, _Window] = {}

    def offer(self, key: Any, item: Any) -> Decision:
        """Send now (count 1), or hold it; the first held item asks for a flush later."""
        with self._lock:
            now = self._clock()
            current = self._windows.get(key)
            if current is None or (now >= current.until and current.pending == 0):
                self._windows[key] = _Window(until=now + self.window)
                self._forget_idle(now)
                return Decision(send_now=True)
            current.pending += 1
            current.last = item
            if current.flush_scheduled:
                return Decision(send_now=False)
            current.flush_scheduled = True
            return Decision(send_now=False, flush_in=max(0.0, current.until - now))

    def flush(self, key: Any) -> tuple[Any, int] | None:
        """The held item and how many it stands for (None if nothing); a new window starts."""
        with self._lock:
            current = self._windows.get(key)
            if current is None or current.pending == 0:
                return None
            item, count = current.last, current.pending
            current.pending, current.last, current.flush_scheduled = 0, None, False
            current.until = self._clock() + self.window
            return item, count

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, w in self._windows.items()
                if w.pending == 0 and now >= w.until + self.window]
        for key in idle:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)


class RuleTriggerCoalescing(DependencyProvider):
    """The container's Coalescer for rule.triggered, and a way to run its flushes later.

    The window comes from `ATTUNE.rule_triggered_window_seconds` (default 1 s).
    """

    def setup(self) -> None:
        section = self.container.config.get("ATTUNE") or {}
        window = float(section.get("rule_triggered_window_seconds", DEFAULT_WINDOW_SECONDS))
        self.coalescer = Coalescer(window)

    def get_dependency(self, worker_ctx: Any) -> RuleTriggerCoalescing:
        return self

    def offer(self, key: Any, item: Any) -> Decision:
        return self.coalescer.offer(key, item)

    def flush_later(self, key: Any, delay: float,
                    send: Callable[[Any, int], None]) -> None:
        """After `delay` seconds, send the key's held item with its count."""

        def run() -> None:
            time.sleep(delay)
            held = self.coalescer.flush(key)
            if held is None:
                return
            try:
                send(*held)
            except Exception:  # a managed thread that raises would kill the container
                log.exception("coalesced flush of %s failed", key)

        self.container.spawn_managed_thread(run)
