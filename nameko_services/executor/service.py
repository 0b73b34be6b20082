"""ExecutorService: entrypoints only; the logic lives in the room's modules."""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler
from nameko.rpc import rpc
from nameko.timer import timer

from ..domain import messages
from ..domain.states import TERMINAL_STATES
from ..extensions import Dispatcher, PlatformProvider
from . import enforcement, recovery, scheduling, with_items

# An eager timer with this interval fires once, at start-up (it would next fire in ~30 years).
AT_START_UP_ONLY = 10**9
SWEEP_INTERVAL_SECONDS = 60


class ExecutorService:
    """Turns events into enforcements and executions, schedules them, runs with-items."""

    name = "executor"

    platform = PlatformProvider()
    dispatch = Dispatcher()

    @event_handler(messages.GATEWAY, messages.EVENT_CREATED)
    @event_handler(messages.SENSOR, messages.EVENT_CREATED)
    def on_event_created(self, payload: dict[str, Any]) -> None:
        """Evaluate the event's rules once (a redelivered event finds it processed)."""
        enforcement.handle_event(
            self.platform.engine, self.platform.cipher, self.dispatch,
            payload["event_id"], payload["tenant_id"],
        )

    @event_handler(messages.GATEWAY, messages.EXECUTION_REQUESTED)
    def on_execution_requested(self, payload: dict[str, Any]) -> None:
        """A user asked for an execution: schedule it (or fan it out, or fail it)."""
        scheduling.schedule_and_send(
            self.platform.engine, self.dispatch, payload["execution_id"], payload["tenant_id"]
        )

    @event_handler(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED)
    def on_execution_status_changed(self, payload: dict[str, Any]) -> None:
        """A with-items child finished: top up or finish its parent. Anything else is ignored."""
        child = payload.get("execution") or {}
        if (payload.get("status") in TERMINAL_STATES and payload.get("parent_execution_id")
                and child.get("item_index") is not None):
            with_items.refresh_parent(
                self.platform.engine, self.dispatch,
                payload["parent_execution_id"], payload["tenant_id"],
            )

    @event_handler(messages.GATEWAY, messages.EXECUTION_CANCEL_REQUESTED)
    def on_execution_cancel_requested(self, payload: dict[str, Any]) -> None:
        """Cancel of a with-items parent: cancel its children that have not started."""
        with_items.refresh_parent(
            self.platform.engine, self.dispatch, payload["execution_id"], payload["tenant_id"]
        )

    @timer(interval=AT_START_UP_ONLY, eager=True)
    def resume(self) -> None:
        """Start-up: resume everything the database says is unfinished."""
        recovery.resume(self.platform.engine, self.platform.cipher, self.dispatch)

    @timer(interval=SWEEP_INTERVAL_SECONDS)
    def sweep(self) -> None:
        """Safety net for lost messages (e.g. a publisher that crashed after its commit)."""
        recovery.sweep(self.platform.engine, self.platform.cipher, self.dispatch)

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok"}
