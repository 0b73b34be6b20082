"""This worker process: its name, its heartbeat, and the runs it has in flight.

A DependencyProvider with its own managed thread rather than a `@timer` entrypoint: a timer
tick needs a free nameko worker slot, and when every slot (max_workers) is busy running
actions the heartbeat would stall exactly when it matters. For the same reason cancels are
noticed here, from the database (the truth), not from a message that could wait behind a full
prefetch window: every WATCH_SECONDS the statuses of the runs in flight are read, and a run
whose execution is no longer `running` (canceling, or ended elsewhere) is stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import Engine

from ..domain.db import transaction
from ..domain.states import ExecutionStatus
from ..domain.supervision import REPLICA_VARIABLE
from ..extensions import PlatformProvider
from . import repository

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
WATCH_SECONDS = 0.5


class Slot:
    """One run in flight: cancel may arrive before the runner exists."""

    def __init__(self, execution_id: int, action_ref: str | None = None) -> None:
        self.execution_id = execution_id
        self.action_ref = action_ref
        self.started = time.time()
        self.canceled = False
        self.runner: Any = None

    def describe(self) -> dict[str, Any]:
        """The run as an operator sees it (the worker's `status()` RPC)."""
        return {"execution_id": self.execution_id, "action_ref": self.action_ref,
                "running_seconds": round(time.time() - self.started, 3),
                "runner": type(self.runner).__name__ if self.runner is not None else None,
                "canceled": self.canceled}

    def attach(self, runner: Any) -> None:
        """Remember the runner; a cancel that came first reaches it now."""
        self.runner = runner
        if self.canceled:
            runner.cancel()

    def cancel(self) -> None:
        """Cancel once (the runner stops its process group)."""
        if self.canceled:
            return
        self.canceled = True
        if self.runner is not None:
            self.runner.cancel()


class Runtime:
    """What the service sees: `name` and `track(execution_id)`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.slots: dict[int, Slot] = {}

    @contextlib.contextmanager
    def track(self, execution_id: int, action_ref: str | None = None) -> Iterator[Slot]:
        """Register a run in flight for the watch, for `cancel_all` and for `status()`."""
        slot = Slot(execution_id, action_ref)
        self.slots[execution_id] = slot
        try:
            yield slot
        finally:
            self.slots.pop(execution_id, None)

    def cancel_all(self) -> None:
        """Stop every run in flight (the container is being killed)."""
        for slot in list(self.slots.values()):
            slot.cancel()

    def watch(self, engine: Engine) -> None:
        """Stop the runs whose execution left `running` (cancel requested, or ended elsewhere)."""
        ids = list(self.slots)
        if not ids:
            return
        with transaction(engine) as conn:
            current = repository.statuses(conn, ids)
        for execution_id in ids:
            status = current.get(execution_id)
            if status != ExecutionStatus.RUNNING and execution_id in self.slots:
                log.info("stopping execution %s (now %s)", execution_id, status,
                         extra={"execution_id": execution_id})
                self.slots[execution_id].cancel()

    def beat(self, engine: Engine, status: str = "online") -> None:
        """Upsert the workers row and stamp the executions in flight."""
        with transaction(engine) as conn:
            repository.heartbeat(conn, self.name, self.hostname, self.pid, status)
            repository.touch_executions(conn, list(self.slots))


class WorkerRuntime(DependencyProvider):
    """Provides the `Runtime`; heartbeats and watches in one managed thread."""

    _instances = itertools.count(1)

    def setup(self) -> None:
        # host:replica:pid names the process (executions' `worker`), the replica being what
        # `attune up` or systemd calls it (ATTUNE_REPLICA: worker, worker-2…); a second
        # container in the same process (tests) gets :N.
        number = next(self._instances)
        suffix = "" if number == 1 else f":{number}"
        replica = os.environ.get(REPLICA_VARIABLE)
        host = f"{socket.gethostname()}:{replica}" if replica else socket.gethostname()
        self.runtime = Runtime(f"{host}:{os.getpid()}{suffix}")
        self._stop = threading.Event()
        self._engine: Engine | None = None

    def start(self) -> None:
        platform = next(
            d for d in self.container.dependencies if isinstance(d, PlatformProvider)
        )
        self._engine = platform.platform.engine
        self.container.spawn_managed_thread(self._loop, identifier="worker-heartbeat")

    def stop(self) -> None:
        self._stop.set()
        if self._engine is not None:
            with contextlib.suppress(Exception):
                self.runtime.beat(self._engine, status="offline")

    def kill(self) -> None:
        """The container is dying: no action process may outlive it."""
        self._stop.set()
        self.runtime.cancel_all()

    def get_dependency(self, worker_ctx: Any) -> Runtime:
        """The same Runtime for every nameko worker of this container."""
        return self.runtime

    def _loop(self) -> None:
        assert self._engine is not None
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_beat:
                    self.runtime.beat(self._engine)
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
                self.runtime.watch(self._engine)
            except Exception:  # a database hiccup must not kill the container
                log.exception("worker heartbeat/watch failed")
            self._stop.wait(WATCH_SECONDS)
