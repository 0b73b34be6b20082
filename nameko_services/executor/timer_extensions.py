"""Nameko glue for durable timers: one loop per executor container, firing through workers.

- `DurableTimerLoop` (shared per container) runs a greenthread that sleeps until the earliest
  `timers.due_at` (database clock), hands each due timer to `@timer_due` as an ordinary nameko
  worker, and sleeps again. It is woken early by `wake()` (a TIMER_SCHEDULED broadcast: some
  executor inserted a timer) and re-reads the table at least every POLL_CAP_SECONDS, so a timer
  inserted by an executor that then died is still fired. At start-up it simply finds what is
  due: timers survive restarts because they are rows.
- `@timer_due` marks the service method run with `(timer_id,)`.
- `TimerWheel()` gives handlers the loop, to `wake()` it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, Entrypoint, SharedExtension
from sqlalchemy import Engine

from ..extensions import PlatformProvider
from . import timers

log = logging.getLogger(__name__)

POLL_CAP_SECONDS = 5.0
ERROR_BACKOFF_SECONDS = 2.0


class DurableTimerLoop(SharedExtension):
    """The container's timer loop and the set of timers it has handed out."""

    def __init__(self) -> None:
        super().__init__()
        self._entrypoint: TimerDue | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._gt: Any = None
        self._engine: Engine | None = None
        self.inflight: set[int] = set()

    def register(self, entrypoint: TimerDue) -> None:
        self._entrypoint = entrypoint

    def start(self) -> None:
        platform = next(
            d for d in self.container.dependencies if isinstance(d, PlatformProvider)
        )
        self._engine = platform.platform.engine
        self._gt = self.container.spawn_managed_thread(self._run, identifier="durable-timers")

    def wake(self) -> None:
        """Re-read the earliest due time now (a timer was inserted)."""
        self._wake.set()

    def done(self, timer_id: int) -> None:
        self.inflight.discard(timer_id)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                wait = self._fire_due()
            except Exception:  # the database may be restarting: try again shortly
                log.exception("durable timer loop: reading the timers table failed")
                wait = ERROR_BACKOFF_SECONDS
            self._wake.wait(wait)

    def _fire_due(self) -> float:
        """Hand out every due timer; return how long to sleep."""
        assert self._engine is not None
        for timer_id in timers.due_ids(self._engine, exclude=self.inflight):
            if self._stopped.is_set() or self._entrypoint is None:
                return 0.0
            self.inflight.add(timer_id)
            if not self._entrypoint.fire(timer_id):
                self.inflight.discard(timer_id)
                return POLL_CAP_SECONDS
        until = timers.seconds_until_next(self._engine, exclude=self.inflight)
        if until is None:
            return POLL_CAP_SECONDS
        return min(POLL_CAP_SECONDS, max(until, 0.0))

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._gt is not None:
            self._gt.wait()

    def kill(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._gt is not None:
            self._gt.kill()


class TimerDue(Entrypoint):
    """`@timer_due`: the method run, as a worker, for each due timer id."""

    loop = DurableTimerLoop()

    def setup(self) -> None:
        self.loop.register(self)

    def stop(self) -> None:  # no new workers once the container is stopping
        self.loop._stopped.set()
        self.loop._wake.set()

    def fire(self, timer_id: int) -> bool:
        """Spawn the worker; False when the container no longer takes work."""
        try:
            self.container.spawn_worker(self, (timer_id,), {},
                                        handle_result=self._handled(timer_id))
        except ContainerBeingKilled:
            return False
        return True

    def _handled(self, timer_id: int):
        def handle_result(worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
            self.loop.done(timer_id)
            return result, exc_info

        return handle_result


timer_due = TimerDue.decorator


class TimerWheel(DependencyProvider):
    """The container's timer loop, so an entrypoint can wake it."""

    loop = DurableTimerLoop()

    def get_dependency(self, worker_ctx: Any) -> DurableTimerLoop:
        return self.loop
