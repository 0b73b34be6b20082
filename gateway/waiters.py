"""Synchronous runs (`?wait=S`): requests of this gateway process waiting on an execution's news.

A request takes a `Slot` and reserves it for its tenant before it stores anything (bounded per
process and per tenant: TooManyWaitersError, 503 / 429), tells it what to watch inside the
transaction that creates the execution or the event — so no news can pass before the watch
exists — and after the commit waits. The relay (serve.py) hands every notifier broadcast to
`Waiters.publish`, which wakes the slots it concerns: a terminal status of the watched
execution; for a watched event, a terminal status of one of its executions, or its
`event.processed` (it started none). A woken request reads the database, tenant-scoped, for its
answer: a notification only says "look again", so a duplicated one costs a read, and nothing is
polled. Every gateway process receives every broadcast, so the one holding the request hears.

Plain `threading` primitives: green in the gateway (monkey-patched), like notifications.py.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from flask import request

from nameko_services.domain import messages
from nameko_services.domain.errors import BadRequestError, TooManyWaitersError
from nameko_services.domain.states import TERMINAL_STATES

T = TypeVar("T")
Key = tuple[str, int, int]  # (what, tenant_id, id): "execution" or "event"


def wait_seconds(maximum: float) -> float | None:
    """The request's `?wait=S` (seconds, 0 < S <= maximum), None without one; else 400 naming
    the query parameter and why."""
    raw = request.args.get("wait")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= maximum:  # NaN and infinities fail here too
        raise BadRequestError(
            f"Query parameter 'wait' must be a number of seconds above 0 and at most "
            f"{maximum:g} (ATTUNE.api.max_wait_seconds), not {raw!r}",
            {"fields": {"wait": f"seconds, 0 < wait <= {maximum:g}"}},
        )
    return value


class Slot:
    """One waiting request: what it watches and the event that wakes it."""

    def __init__(self, registry: Waiters) -> None:
        self._registry = registry
        self._wake = threading.Event()
        self.tenant_id: int | None = None
        self.key: Key | None = None

    def reserve(self, tenant_id: int) -> None:
        """Take room for the tenant to wait; TooManyWaitersError when there is none."""
        self._registry._reserve(self, int(tenant_id))

    def watch_execution(self, execution_id: int) -> None:
        self._registry._watch(self, ("execution", self._tenant(), int(execution_id)))

    def watch_event(self, event_id: int) -> None:
        """Wake for the event's executions ending, or for its `event.processed`."""
        self._registry._watch(self, ("event", self._tenant(), int(event_id)))

    def wake(self) -> None:
        self._wake.set()

    def wait_for(self, read: Callable[[], T], done: Callable[[T], bool],
                 deadline: float) -> tuple[T, bool]:
        """`read()` until `done` says so — once now, then after each wake — or until
        `deadline` (time.monotonic()) or shutdown: (the last value read, whether done)."""
        while True:
            self._wake.clear()  # before reading: news arriving during the read wakes us again
            value = read()
            if done(value):
                return value, True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._registry.closing:
                return value, False
            self._wake.wait(remaining)

    def _tenant(self) -> int:
        if self.tenant_id is None:
            raise RuntimeError("reserve() the slot before watching")
        return self.tenant_id


class Waiters:
    """Every waiting request of this process, by what it watches. `on_arrival(tenant_id)` is
    told of each reservation, before the request stores anything (presence.Presence.arrived:
    the tenant's news is then published for the request to hear)."""

    def __init__(self, max_waiters: int, tenant_max_waiters: int,
                 on_arrival: Callable[[int], None] | None = None) -> None:
        self.max_waiters = max_waiters
        self.tenant_max_waiters = tenant_max_waiters
        self._on_arrival = on_arrival
        self.closing = False
        self._lock = threading.Lock()
        self._by_key: dict[Key, set[Slot]] = {}
        self._by_tenant: dict[int, int] = {}
        self._count = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[Slot]:
        """A slot for one request, given up (whatever happens) when the block ends."""
        slot = Slot(self)
        try:
            yield slot
        finally:
            self._release(slot)

    def tenants(self) -> set[int]:
        """The tenants with a request waiting here."""
        with self._lock:
            return set(self._by_tenant)

    def waiting(self, tenant_id: int | None = None) -> int:
        """How many requests wait (of the tenant, if given)."""
        with self._lock:
            return self._count if tenant_id is None else self._by_tenant.get(tenant_id, 0)

    def publish(self, tenant_id: Any, message: Mapping[str, Any] | None) -> int:
        """Wake the slots a notification concerns; how many were woken."""
        if tenant_id is None or not isinstance(message, Mapping):
            return 0
        data = message.get("data")
        if not isinstance(data, Mapping):
            return 0
        keys: list[Key] = []
        try:
            tenant = int(tenant_id)
            if message.get("entity_type") == "execution":
                if data.get("status") in TERMINAL_STATES:
                    keys.append(("execution", tenant, int(message["entity_id"])))
                    event_id = (data.get("execution") or {}).get("event_id")
                    if event_id is not None:
                        keys.append(("event", tenant, int(event_id)))
            elif message.get("event") == messages.EVENT_PROCESSED:
                keys.append(("event", tenant, int(message["entity_id"])))
        except (KeyError, TypeError, ValueError, AttributeError):
            return 0
        if not keys:
            return 0
        with self._lock:
            woken = [slot for key in keys for slot in self._by_key.get(key, ())]
        for slot in woken:
            slot.wake()
        return len(woken)

    def release_all(self) -> int:
        """Shutdown: every waiting request answers now with what it has; how many there were."""
        with self._lock:
            self.closing = True
            slots = [slot for group in self._by_key.values() for slot in group]
        for slot in slots:
            slot.wake()
        return len(slots)

    def _reserve(self, slot: Slot, tenant_id: int) -> None:
        with self._lock:
            if slot.tenant_id is not None:
                raise RuntimeError("a slot is reserved once")
            held = self._by_tenant.get(tenant_id, 0)
            if held >= self.tenant_max_waiters:
                raise TooManyWaitersError(
                    f"This tenant already has {held} requests waiting here (limit "
                    f"{self.tenant_max_waiters}); retry, or ask without ?wait= and follow "
                    "the execution", scope="tenant", waiting=held,
                    limit=self.tenant_max_waiters)
            if self._count >= self.max_waiters:
                raise TooManyWaitersError(
                    f"This gateway process already has {self._count} requests waiting (limit "
                    f"{self.max_waiters}); retry, or ask without ?wait= and follow the "
                    "execution", scope="process", waiting=self._count, limit=self.max_waiters)
            slot.tenant_id = tenant_id
            self._by_tenant[tenant_id] = held + 1
            self._count += 1
        if self._on_arrival is not None:
            self._on_arrival(tenant_id)

    def _watch(self, slot: Slot, key: Key) -> None:
        with self._lock:
            if slot.key is not None:
                raise RuntimeError("a slot watches one thing")
            slot.key = key
            self._by_key.setdefault(key, set()).add(slot)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            if slot.key is not None:
                group = self._by_key.get(slot.key)
                if group is not None:
                    group.discard(slot)
                    if not group:
                        del self._by_key[slot.key]
                slot.key = None
            if slot.tenant_id is not None:
                left = self._by_tenant[slot.tenant_id] - 1
                if left:
                    self._by_tenant[slot.tenant_id] = left
                else:
                    del self._by_tenant[slot.tenant_id]
                self._count -= 1
                slot.tenant_id = None
