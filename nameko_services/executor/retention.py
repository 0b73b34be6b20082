"""The pruning job (domain/retention.py) on the executor's schedule.

Every executor replica runs the loop; each pass takes the retention advisory lock first, so one
prunes at a time and another takes over when it dies. The loop is a managed thread of its own
with its own small engine: it takes no nameko worker and no connection of the hot path, sleeps
between batches (eventlet yields to the executor's other work), and a stopping container ends
it after the batch in progress.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import Engine

from ..domain import retention
from ..domain.db import make_engine
from ..domain.settings import Settings

log = logging.getLogger(__name__)


class RetentionJob(DependencyProvider):
    """Runs a pruning pass every ATTUNE.retention.interval_seconds (the first one interval
    after start-up), unless retention is disabled."""

    def setup(self) -> None:
        settings = Settings.from_mapping(self.container.config)
        self.settings = settings.retention
        self._database_url = settings.database_url
        self._stopped = threading.Event()
        self._engine: Engine | None = None
        self._gt: Any = None

    def start(self) -> None:
        if not self.settings.enabled:
            return
        self._engine = make_engine(self._database_url, pool_size=2)
        self._gt = self.container.spawn_managed_thread(self._run, identifier="retention")

    def _run(self) -> None:
        while not self._stopped.wait(self.settings.interval_seconds):
            try:
                self._pass()
            except Exception:  # the database may be restarting: the next pass tries again
                log.exception("retention: the pruning pass failed")

    def _pass(self) -> dict[str, int] | None:
        """One pass now; None when another process is pruning."""
        assert self._engine is not None
        return retention.prune(self._engine, self.settings.ages(),
                               batch_size=self.settings.batch_size,
                               pause_seconds=self.settings.pause_seconds,
                               duty_cycle=self.settings.duty_cycle,
                               keep_going=lambda: not self._stopped.is_set())

    def stop(self) -> None:
        self._stopped.set()
        if self._gt is not None:
            self._gt.wait()
        if self._engine is not None:
            self._engine.dispose()

    def kill(self) -> None:
        self._stopped.set()
        if self._gt is not None:
            self._gt.kill()
        if self._engine is not None:
            self._engine.dispose()
