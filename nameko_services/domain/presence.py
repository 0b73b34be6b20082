"""Who listens to a tenant's news: news nobody listens to is not published.

Live news (messages.NEWS_ONLY: an execution created, started, its output, …) only feeds the
gateways' WebSocket clients and their requests waiting on an execution (`?wait=`). Without
them it was a third of the platform's work per execution (docs/performance.md "News nobody
listens to"). So every gateway process announces, every `interval_seconds`, the tenants that
have a client or a waiting request there (LISTENERS_PRESENT, broadcast to every service
process; an empty list too), and at once when a tenant's first one arrives, before that
request stores anything. A service process publishes a tenant's live news while an
announcement of it is fresh (3 intervals). It publishes everything while it does not know:
during its first 2 intervals, for one interval after the announcements resume, and whenever
none has come for 3 intervals (no gateway, or its broker connection lost): it fails open.

`ATTUNE.news.publish_unwatched: true` publishes all news, for consumers of the news exchanges
other than the gateways. Work messages and follow-ups are never held back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config_values import bounded, flag, reject_unknown

FRESH_INTERVALS = 3  # an announcement holds this many intervals: two may be lost or late
LEARNING_INTERVALS = 2  # a process that just started publishes everything this long


@dataclass(frozen=True)
class NewsSettings:
    """`ATTUNE.news`: whether unwatched news is published, and the gateways' announcement period."""

    publish_unwatched: bool = False
    interval_seconds: float = 5.0

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> NewsSettings:
        """Parse `ATTUNE.news`; an unknown key or a bad value fails naming it."""
        reject_unknown(section, cls.__dataclass_fields__, "news")
        return cls(publish_unwatched=flag(section.get("publish_unwatched", False)),
                   interval_seconds=bounded(section, "interval_seconds", 5.0, "news",
                                            minimum=0.05, maximum=300))


def from_config(config: Mapping[str, Any]) -> NewsSettings:
    """The NewsSettings of a loaded nameko.yaml."""
    return NewsSettings.from_mapping((config.get("ATTUNE") or {}).get("news") or {})


def announcement(tenants: Iterable[int], interval_seconds: float) -> dict[str, Any]:
    """The LISTENERS_PRESENT payload: these tenants are listened to, for the next intervals."""
    return {"tenants": sorted({int(t) for t in tenants}), "interval_seconds": interval_seconds}


class Listeners:
    """A service process's view of the announcements: is a tenant's news listened to now?"""

    def __init__(self, interval_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._until: dict[int, float] = {}
        self._heard_until = -math.inf  # announcements come in until then (else: fail open)
        self._everything_until = clock() + LEARNING_INTERVALS * interval_seconds

    def heard(self, payload: Mapping[str, Any]) -> None:
        """Take in one LISTENERS_PRESENT announcement (a malformed one is ignored)."""
        try:
            interval = float(payload.get("interval_seconds") or self.interval_seconds)
            tenants = [int(t) for t in payload.get("tenants") or ()]
        except (TypeError, ValueError, AttributeError):
            return
        now = self._clock()
        if now >= self._heard_until:  # the first after a silence: the other gateways' follow
            self._everything_until = max(self._everything_until, now + interval)
        until = now + FRESH_INTERVALS * interval
        self._heard_until = max(self._heard_until, until)
        for tenant in tenants:
            self._until[tenant] = until
        if len(self._until) > 2 * len(tenants) + 64:  # forget long-gone tenants now and then
            self._until = {t: u for t, u in self._until.items() if u > now}

    def knows(self) -> bool:
        """Does this process know who listens (else it publishes everything)?"""
        now = self._clock()
        return self._everything_until <= now < self._heard_until

    def listening(self, tenant_id: Any) -> bool:
        """Does anyone listen to this tenant's news now (or might, as far as this process knows)?"""
        if not self.knows():
            return True
        try:
            until = self._until.get(int(tenant_id))
        except (TypeError, ValueError):
            return True  # not a tenant's news: never held back here
        return until is not None and until > self._clock()


class Presence:
    """A gateway process's side: announce the tenants that have a listener here."""

    def __init__(self, publish: Callable[[dict[str, Any]], None], interval_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._publish = publish
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._announced: dict[int, float] = {}

    def arrived(self, tenant_id: int) -> None:
        """A client or a waiting request of the tenant arrived: announce it now unless this
        process did within the last interval (the announcement is still fresh everywhere).
        Called before the request stores anything, so its news is listened to."""
        tenant = int(tenant_id)
        now = self._clock()
        last = self._announced.get(tenant)
        if last is not None and now - last < self.interval_seconds:
            return
        self._announced[tenant] = now
        self._publish(announcement([tenant], self.interval_seconds))

    def tick(self, tenants: Iterable[int]) -> None:
        """Every interval: announce the tenants that have a listener here, even none (the
        services fail open when no announcement comes at all)."""
        listened = {int(t) for t in tenants}
        now = self._clock()
        self._announced = {t: now for t in listened}
        self._publish(announcement(listened, self.interval_seconds))
