"""Nameko glue for the timer heap: one scheduler loop per container, firing through workers.

- `TimerHeap` (shared per container) owns the Scheduler and runs its loop in a managed thread.
- `@timer_due` marks the service method the loop calls, as an ordinary nameko worker (so it gets
  the service's dependencies, logging and max_workers back-pressure) with
  `(trigger_id, scheduled_at)`.
- `Timers()` gives handlers the Scheduler, to add, reschedule or drop timers.
The next point is computed from the schedule the moment one is handed out, never from when
the worker finished, so timers do not drift.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Any

from nameko.extensions import DependencyProvider, Entrypoint, SharedExtension

from .scheduler import Scheduler


class TimerHeap(SharedExtension):
    """The container's one Scheduler and the greenthread that serves it."""

    def __init__(self) -> None:
        # Not in setup(): setups run concurrently, and TimerDue registers during its own.
        super().__init__()
        self.scheduler = Scheduler()
        self._entrypoint: TimerDue | None = None
        self._gt: Any = None

    def register(self, entrypoint: TimerDue) -> None:
        self._entrypoint = entrypoint

    def start(self) -> None:
        self._gt = self.container.spawn_managed_thread(self._run)

    def _run(self) -> None:
        self.scheduler.run(self._on_due)

    def _on_due(self, key: Hashable, spec: Any, due: datetime) -> datetime | None:
        if self._entrypoint is not None:
            self._entrypoint.fire(key, due)
        return spec.schedule.next_after(due)

    def stop(self) -> None:
        self.scheduler.stop()
        if self._gt is not None:
            self._gt.wait()

    def kill(self) -> None:
        self.scheduler.stop()
        if self._gt is not None:
            self._gt.kill()


class TimerDue(Entrypoint):
    """`@timer_due`: the method run, as a worker, for each schedule point handed out."""

    heap = TimerHeap()

    def setup(self) -> None:
        self.heap.register(self)

    def stop(self) -> None:  # no new workers once the container is stopping
        self.heap.scheduler.stop()

    def fire(self, key: Hashable, due: datetime) -> None:
        self.container.spawn_worker(self, (key, due), {})


timer_due = TimerDue.decorator


class Timers(DependencyProvider):
    """The Scheduler, for handlers that add, reschedule or drop timers."""

    heap = TimerHeap()

    def get_dependency(self, worker_ctx: Any) -> Scheduler:
        return self.heap.scheduler
