"""Bounded backlog and fair share (docs/reliability.md "Backlog").

*Queued* is what was accepted and has not started: events the executor has not evaluated yet
(`processed_at IS NULL`) plus executions `requested` or `scheduled`. Both are counted because
a flood waits first in the executor's event queue, then in the workers' queue; counting only
one would let the other grow without bound.

One grouped count (`queued_counts`, two partial indexes) is cached per process for
`refresh_seconds` (`Backlog`): the gateway refuses a webhook or an API run of a tenant over its
bound (429) or of any tenant while the platform is over the global bound (503), and every
publisher gives each work message a RabbitMQ priority from its tenant's count (`priority_for`),
so a tenant with little queued goes ahead of one with much: one tenant's flood does not hold
up the others. Nothing accepted is ever dropped; the bound only decides what is accepted.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select, union_all

from .config_values import flag, reject_unknown
from .db import make_engine
from .errors import BacklogFullError, ConfigurationError
from .models import events, executions
from .states import ExecutionStatus

log = logging.getLogger(__name__)

QUEUED_STATUSES = (ExecutionStatus.REQUESTED.value, ExecutionStatus.SCHEDULED.value)
# Work queues are declared with x-max-priority MAX_PRIORITY (RabbitMQ: 0 lowest). A tenant with
# nothing queued gets MAX_PRIORITY, and each doubling of its backlog costs one level: 1 → 8,
# 2-3 → 7, …, 256 and more → 0. A tenant cannot keep a high priority by flooding, so no one
# starves: the more a tenant has queued, the later its new work goes.
MAX_PRIORITY = 9


@dataclass(frozen=True, slots=True)
class BacklogSettings:
    """ATTUNE.backlog: the bounds on queued work and how fresh the counts behind them are.

    `enabled` false accepts everything (priorities still apply); `retry_after_seconds` is the
    `Retry-After` of a refusal.
    """

    enabled: bool = True
    tenant_max_queued: int = 500
    global_max_queued: int = 2000
    refresh_seconds: float = 0.5
    retry_after_seconds: int = 2

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> BacklogSettings:
        """Parse the block; an unknown key or a bad value fails naming it."""
        reject_unknown(section, cls.__dataclass_fields__, "backlog")
        default = cls()
        try:
            settings = cls(
                enabled=flag(section.get("enabled", default.enabled)),
                tenant_max_queued=int(section.get("tenant_max_queued",
                                                  default.tenant_max_queued)),
                global_max_queued=int(section.get("global_max_queued",
                                                  default.global_max_queued)),
                refresh_seconds=float(section.get("refresh_seconds", default.refresh_seconds)),
                retry_after_seconds=int(section.get("retry_after_seconds",
                                                    default.retry_after_seconds)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad value in ATTUNE.backlog: {exc}") from None
        if min(settings.tenant_max_queued, settings.global_max_queued,
               settings.retry_after_seconds) < 1 or settings.refresh_seconds < 0:
            raise ConfigurationError("ATTUNE.backlog needs bounds and retry_after_seconds >= 1 "
                                     "and refresh_seconds >= 0")
        return settings


@functools.cache
def queued_statement() -> Select[Any]:
    """(tenant_id, queued) rows: one statement over two partial indexes
    (`ix_executions_queued`, `ix_events_unprocessed_tenant`), whatever the history's size.
    Built once: building it cost 0.47 ms of CPU a count, running it 0.12."""
    queued = union_all(
        select(executions.c.tenant_id, func.count().label("n"))
        .where(executions.c.status.in_(QUEUED_STATUSES))
        .group_by(executions.c.tenant_id),
        select(events.c.tenant_id, func.count().label("n"))
        .where(events.c.processed_at.is_(None))
        .group_by(events.c.tenant_id),
    ).subquery()
    return select(queued.c.tenant_id, func.sum(queued.c.n)).group_by(queued.c.tenant_id)


def queued_counts(conn: Connection) -> dict[int, int]:
    """Queued events and executions per tenant (`queued_statement`)."""
    rows = conn.execute(queued_statement())
    return {int(tenant): int(n) for tenant, n in rows if tenant is not None}


def priority_for(queued: int) -> int:
    """The RabbitMQ priority of a work message whose tenant has `queued` items waiting."""
    return max(0, MAX_PRIORITY - max(0, queued).bit_length())


class Backlog:
    """The queued counts of every tenant, as of at most `refresh_seconds` ago, plus what this
    process accepted (for the bounds) or published (for priorities) since, so a burst between
    two refreshes is counted too: a flood's first messages do not all get the top priority.

    One caller refreshes at a time; the others use the counts they have meanwhile. With
    `background` (runs a callable in a thread of its own), only the first count is waited for:
    later ones are read while the callers go on with the counts they have, so no admission and
    no publish waits for the count (unless `refresh_seconds` is 0: every call counts, inline).
    A failed refresh keeps the old counts (the database being down fails the request anyway).
    """

    def __init__(self, settings: BacklogSettings, load: Callable[[], dict[int, int]],
                 clock: Callable[[], float] = time.monotonic,
                 background: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.settings = settings
        self._load = load
        self._clock = clock
        self._background = background
        self._counts: dict[int, int] = {}
        self._total = 0
        self._admitted: Counter[int] = Counter()
        self._published: Counter[int] = Counter()
        self._expires = float("-inf")
        self._refreshing = threading.Lock()

    def _refresh(self) -> None:
        if self._clock() < self._expires or not self._refreshing.acquire(blocking=False):
            return
        if (self._background is not None and self.settings.refresh_seconds > 0
                and self._expires != float("-inf")):
            self._background(self._reload)
        else:
            self._reload()

    def _reload(self) -> None:
        """Read the counts (the caller holds `_refreshing`, released here)."""
        try:
            counts = self._load()
        except Exception as exc:  # keep serving the last counts; retry after the interval
            log.warning("backlog counts not refreshed: %s", exc)
        else:
            self._counts, self._total = counts, sum(counts.values())
            self._admitted, self._published = Counter(), Counter()
        finally:
            self._expires = self._clock() + self.settings.refresh_seconds
            self._refreshing.release()

    def queued(self, tenant_id: int) -> int:
        """The tenant's queued events and executions, as far as this process knows."""
        self._refresh()
        return self._counts.get(tenant_id, 0) + self._admitted[tenant_id]

    def total(self) -> int:
        """Everything queued on the platform, as far as this process knows."""
        self._refresh()
        return self._total + sum(self._admitted.values())

    def priority(self, tenant_id: int) -> int:
        """The priority of a work message of the tenant about to be published (`priority_for`
        its backlog, counting what this process published since the last refresh)."""
        self._refresh()
        queued = self._counts.get(tenant_id, 0) + self._published[tenant_id]
        self._published[tenant_id] += 1
        return priority_for(queued)

    def admit(self, tenant_id: int) -> None:
        """Accept one more webhook or run of the tenant, or raise BacklogFullError (429 when
        the tenant is over its own bound, 503 when the platform is over the global one)."""
        settings = self.settings
        self._refresh()  # first, so what this call adds is not dropped by a refresh after it
        if settings.enabled:
            tenant, total = self.queued(tenant_id), self.total()
            if tenant >= settings.tenant_max_queued:
                raise BacklogFullError(
                    f"Too much work of this tenant is waiting ({tenant} queued events and "
                    f"executions, limit {settings.tenant_max_queued}); retry in "
                    f"{settings.retry_after_seconds} s",
                    scope="tenant", queued=tenant, limit=settings.tenant_max_queued,
                    retry_after=settings.retry_after_seconds)
            if total >= settings.global_max_queued:
                raise BacklogFullError(
                    f"The platform is at its bound of waiting work ({total} queued, limit "
                    f"{settings.global_max_queued}); retry in {settings.retry_after_seconds} s",
                    scope="platform", queued=total, limit=settings.global_max_queued,
                    retry_after=settings.retry_after_seconds)
        self._admitted[tenant_id] += 1


_shared: dict[tuple[str, BacklogSettings], Backlog] = {}
_shared_lock = threading.Lock()


def shared(database_url: str, settings: BacklogSettings) -> Backlog:
    """This process's Backlog for a database: the gateway's admission and every publisher's
    priorities share its counts, so a process runs the count once per refresh interval.

    Its engine (one connection, in autocommit: the count is one statement) is made on the
    first refresh, not here; the refreshes after the first run in the background.
    """
    key = (database_url, settings)
    with _shared_lock:
        if key not in _shared:
            engine: list[Engine] = []

            def load() -> dict[int, int]:
                if not engine:
                    engine.append(make_engine(database_url, pool_size=1, autocommit=True))
                with engine[0].connect() as conn:
                    return queued_counts(conn)

            _shared[key] = Backlog(settings, load, background=_in_thread)
        return _shared[key]


def _in_thread(work: Callable[[], None]) -> None:
    """Run `work` in a daemon thread that first lets its starter go on: with green threads (the
    services, the gateway) a new thread runs before its starter resumes, so the count's CPU
    would delay the request or publish that found it due; yielding first, it runs while that
    one waits on its own I/O."""

    def after_a_yield() -> None:
        time.sleep(0)
        work()

    threading.Thread(target=after_a_yield, daemon=True, name="attune-backlog-count").start()


def from_config(config: Mapping[str, Any]) -> Backlog | None:
    """The shared Backlog of a loaded nameko.yaml (None without `ATTUNE.database_url`)."""
    section = config.get("ATTUNE") or {}
    url = section.get("database_url")
    if not url:
        return None
    return shared(str(url), BacklogSettings.from_mapping(section.get("backlog") or {}))
