"""One active notifier among its replicas: news is consumed only by the one holding the lock.

Two notifiers consuming the same queues as competing consumers would each take some of the news
about one execution and publish them independently, so a client could see `running` before
`scheduled`. So the notifier's news handler uses `LeaderQueueConsumer`: a queue consumer of its
own (its own broker connection) that declares the queues at start but consumes only once this
process holds the notifier's PostgreSQL advisory lock (domain/locks.py). The others stand by,
answering RPC (ping) as usual; when the leader dies its session ends, the lock is free and a
standby takes over within a poll, after which the broker redelivers whatever the dead one had
not acknowledged.

A leader whose lock connection breaks (PostgreSQL restarted) takes the lock again on a new
connection; when another process got it first, it stops by raising (its container dies and
its supervisor restarts it as a standby). So for a moment during a PostgreSQL restart two
notifiers may forward news (the old one notices within CHECK_SECONDS of the database being
back). The new leader starts consuming at once: a wait there would let news pile up in the
queues, and backlogs of several queues consumed together can reorder news about one entity.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import eventlet
import eventlet.event
from sqlalchemy import Connection, Engine, select

from ..domain import locks
from ..domain.db import make_engine
from ..domain.settings import Settings
from ..extensions import BatchEventHandler, QueueConsumer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
CHECK_SECONDS = 0.5
LOCK_KEY = 0


class LeadershipLost(Exception):
    """Another notifier took the lock while ours was lost: this one must not consume."""


class LeaderQueueConsumer(QueueConsumer):
    """nameko's queue consumer, consuming only while this process holds the notifier lock."""

    def __init__(self) -> None:
        super().__init__()
        self._standing_down = eventlet.event.Event()
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """Declare the queues (so news waits for whichever notifier leads). With the lock free,
        lead at once and return once consuming, as nameko's consumer does (no backlog builds
        up meanwhile); else return and stand by: the container starts and answers RPC."""
        if self._starting:
            return
        with self.connection as conn, conn.channel() as channel:
            for provider in self._providers:
                provider.queue(channel).declare()
        self._engine = make_engine(Settings.from_mapping(self.container.config).database_url,
                                   pool_size=1)
        if self._take_or_report():
            self._lead_now()
            super().start()
            return
        self._starting = True
        self._gt = self.container.spawn_managed_thread(self._lead)

    def _lead_now(self) -> None:
        log.info("this notifier is the active one (holds the notifier lock)")
        self.container.spawn_managed_thread(self._keep_lock)

    def _lead(self) -> None:
        if not self._wait_for_lock():
            return
        self._lead_now()
        self.run()  # kombu's consume loop; sets _consumers_ready once consuming

    def _wait_for_lock(self) -> bool:
        """Poll until the lock is ours; False when stopped first."""
        while not self._standing_down.ready():
            if self._take_or_report():
                return True
            with eventlet.Timeout(POLL_SECONDS, False):
                self._standing_down.wait()
        return False

    def _take_or_report(self) -> bool:
        """`_take`, with an unreachable database logged and counted as not taken."""
        try:
            return self._take()
        except Exception as exc:
            log.warning("notifier lock: database unreachable (%s)", type(exc).__name__)
            return False

    def _take(self) -> bool:
        """Try the lock on a fresh connection (kept while it holds it): False when another
        session holds it; raises while the database is unreachable."""
        assert self._engine is not None
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if locks.try_lock(conn, locks.NOTIFIER, LOCK_KEY):
                self._conn = conn
                return True
        except Exception:
            conn.close()
            raise
        conn.close()
        return False

    def _keep_lock(self) -> None:
        """While consuming: check the lock's session; take it again if it broke, or stop."""
        while not self.should_stop:
            eventlet.sleep(CHECK_SECONDS)
            if self.should_stop or self._holding():
                continue
            log.warning("notifier lock connection lost: taking the lock again")
            while True:
                try:
                    if self._take():
                        break
                except Exception:
                    eventlet.sleep(CHECK_SECONDS)  # database still away: nobody can take it
                    continue
                raise LeadershipLost("another notifier holds the lock now: stopping")

    def _holding(self) -> bool:
        try:
            assert self._conn is not None
            self._conn.execute(select(1))
            return True
        except Exception:
            with contextlib.suppress(Exception):
                assert self._conn is not None
                self._conn.invalidate()
                self._conn.close()
            return False

    def unregister_provider(self, provider: Any) -> None:
        if self._consumers_ready.ready():
            super().unregister_provider(provider)
            return
        self._providers.discard(provider)  # standing by: nothing consumes for it
        if not self._providers and not self._last_provider_unregistered.ready():
            self._last_provider_unregistered.send()

    def stop(self) -> None:
        if self._consumers_ready.ready():
            super().stop()
        else:  # never led: stop waiting for the lock (or for consumers to become ready)
            self._standing_down.send()
            self.should_stop = True
            self.wait_for_providers()
            with contextlib.suppress(Exception):
                self._gt.wait()
        self._release()

    def kill(self) -> None:
        if not self._standing_down.ready():
            self._standing_down.send()
        super().kill()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        if self._engine is not None:
            self._engine.dispose()


class LeaderBatchEventHandler(BatchEventHandler):
    """The notifier's (batch) event handler: consumed through the `LeaderQueueConsumer`."""

    queue_consumer = LeaderQueueConsumer()


leader_batch_handler = LeaderBatchEventHandler.decorator
