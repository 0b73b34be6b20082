"""SensorService: entrypoints only; timer logic lives in timers.py and scheduler.py.

Custom pack sensors (packs.md) run beside the timers: `PackSensors` (supervisor.py) runs each
in its own child process and stores what it emits (custom.py); `on_pack_changed` reloads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nameko.events import BROADCAST
from nameko.timer import timer

from ..domain import messages
from ..extensions import (
    Dispatcher,
    MessageContext,
    PackCachePruner,
    PlatformProvider,
    event_handler,
    rpc,
)
from . import timers
from .supervisor import PackSensors
from .timer_extensions import Timers, timer_due

RESYNC_INTERVAL_SECONDS = 30
# How soon a pack sensor whose process died (its advisory lock released) runs elsewhere.
CLAIM_INTERVAL_SECONDS = 1

# Every sensor process keeps its own heap, so each must hear every definition change.
definition_change = {"handler_type": BROADCAST, "reliable_delivery": False}


class SensorService:
    """Fires interval, date and cron timers exactly once each and stores their events."""

    name = "sensor"

    platform = PlatformProvider()
    context = MessageContext()  # logs and spans in the context of the message handled
    dispatch = Dispatcher()
    heap = Timers()  # the timers' schedule points (the `timers()` RPC lists them)
    sensors = PackSensors()
    pack_cache = PackCachePruner()  # at start and every 10 min: unused pack versions go

    @timer_due
    def fire_timer(self, trigger_id: int, scheduled_at: datetime) -> None:
        """A schedule point is due: fire it unless another sensor process already did."""
        timers.fire_and_announce(
            self.platform.engine, self.dispatch, self.heap, trigger_id, scheduled_at
        )

    @event_handler(messages.GATEWAY, messages.RULE_CHANGED, **definition_change)
    def on_rule_changed(self, payload: dict[str, Any]) -> None:
        """A rule was created, enabled, disabled or deleted: its trigger may start or stop."""
        timers.refresh(self.platform.engine, self.heap, payload.get("trigger_id"))

    @event_handler(messages.GATEWAY, messages.TRIGGER_CHANGED, **definition_change)
    def on_trigger_changed(self, payload: dict[str, Any]) -> None:
        """A trigger was created, changed or deleted."""
        timers.refresh(self.platform.engine, self.heap, payload.get("trigger_id"))

    @event_handler(messages.GATEWAY, messages.PACK_CHANGED, **definition_change)
    def on_pack_changed(self, payload: dict[str, Any]) -> None:
        """A pack was registered, reloaded or deleted: re-read every timer and pack sensor."""
        timers.resync(self.platform.engine, self.heap)
        self.sensors.sync()

    @timer(interval=RESYNC_INTERVAL_SECONDS, eager=True)
    def resync(self) -> None:
        """At start-up load every timer (resuming from last_fired_at) and start the pack
        sensors; later a safety net for missed definition changes."""
        timers.resync(self.platform.engine, self.heap)
        self.sensors.sync()

    @timer(interval=CLAIM_INTERVAL_SECONDS)
    def claim(self) -> None:
        """Take over the pack sensors no replica runs (one whose replica died): one query."""
        self.sensors.sync()

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok"}

    @rpc
    def timers(self) -> list[dict[str, Any]]:
        """Operator view: each timer in the heap of the sensor process that answers, with its
        next fire time (every replica holds every timer; the first to fire a point wins)."""
        return timers.describe(self.heap)

