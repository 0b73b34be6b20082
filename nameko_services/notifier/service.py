"""NotifierService: domain news in, tenant-scoped notifications out (entrypoints only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..domain import messages as m
from ..domain.db import transaction
from ..extensions import MessageContext, PlatformProvider, rpc
from . import notifications as n
from .broadcast import Broadcast
from .coalescing import RuleTriggerCoalescing
from .leader import leader_event_handler
from .ordering import KeyedFifoLocks

log = logging.getLogger(__name__)


class NotifierService:
    """Maps execution/event/rule/inquiry news to api.md messages and broadcasts them, in order.

    Of several replicas one consumes the news (leader.py), so news about one entity leaves in
    order; the others answer ping and stand by.
    """

    name = "notifier"

    platform = PlatformProvider()
    context = MessageContext()  # logs and spans in the context of the message handled
    broadcast = Broadcast()
    ordering = KeyedFifoLocks()
    coalescing = RuleTriggerCoalescing()

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok"}

    @leader_event_handler(m.EXECUTIONS, m.EXECUTION_CREATED)
    def on_execution_created(self, payload: dict[str, Any]) -> None:
        """Created, then the changes the executor folded into the same message (`then`)."""
        self._forward(f"execution:{payload.get('execution_id')}", lambda: [
            n.for_execution(m.EXECUTION_CREATED, payload),
            *(n.for_execution(m.EXECUTION_STATUS_CHANGED, later)
              for later in payload.get("then") or ())])

    @leader_event_handler(m.EXECUTIONS, m.EXECUTION_STATUS_CHANGED)
    def on_execution_status_changed(self, payload: dict[str, Any]) -> None:
        self._forward(f"execution:{payload.get('execution_id')}",
                      lambda: n.for_execution(m.EXECUTION_STATUS_CHANGED, payload))

    @leader_event_handler(m.EXECUTIONS, m.EXECUTION_OUTPUT)
    def on_execution_output(self, payload: dict[str, Any]) -> None:
        """A running action's lines (worker, live output), in order with its status news."""
        self._forward(f"execution:{payload.get('execution_id')}",
                      lambda: n.for_execution_output(payload))

    @leader_event_handler(m.GATEWAY, m.EVENT_CREATED)
    def on_event_created(self, payload: dict[str, Any]) -> None:
        self._forward(f"event:{payload.get('event_id')}", lambda: self._event(payload))

    @leader_event_handler(m.SENSOR, m.EVENT_CREATED)
    def on_sensor_event_created(self, payload: dict[str, Any]) -> None:
        self._forward(f"event:{payload.get('event_id')}", lambda: self._event(payload))

    @leader_event_handler(m.EXECUTOR, m.EVENT_CREATED)
    def on_execution_trigger_event_created(self, payload: dict[str, Any]) -> None:
        """An execution's end stored an event of an `execution` trigger."""
        self._forward(f"event:{payload.get('event_id')}", lambda: self._event(payload))

    @leader_event_handler(m.EXECUTOR, m.EVENT_PROCESSED)
    def on_event_processed(self, payload: dict[str, Any]) -> None:
        """An event that started no execution: its waiting webhook (`?wait=`) answers now."""
        self._forward(f"event:{payload.get('event_id')}", lambda: n.for_event_processed(payload))

    @leader_event_handler(m.EXECUTOR, m.RULE_TRIGGERED)
    def on_rule_triggered(self, payload: dict[str, Any]) -> None:
        """Coalesced: at most one rule.triggered per rule per window, carrying a `count`."""
        key = f"rule:{payload.get('rule_id')}"
        decision = self.coalescing.offer(key, payload)
        if decision.send_now:
            self._forward(key, lambda: self._rule_triggered({**payload, "count": 1}))
        elif decision.flush_in is not None:
            self.coalescing.flush_later(key, decision.flush_in, lambda held, count: self._forward(
                key, lambda: self._rule_triggered({**held, "count": count})))

    @leader_event_handler(m.EXECUTOR, m.INQUIRY_CREATED)
    def on_inquiry_created(self, payload: dict[str, Any]) -> None:
        self._forward_inquiry(m.INQUIRY_CREATED, payload)

    @leader_event_handler(m.EXECUTOR, m.INQUIRY_RESPONDED)
    def on_inquiry_responded(self, payload: dict[str, Any]) -> None:
        self._forward_inquiry(m.INQUIRY_RESPONDED, payload)

    @leader_event_handler(m.EXECUTOR, m.INQUIRY_EXPIRED)
    def on_inquiry_expired(self, payload: dict[str, Any]) -> None:
        self._forward_inquiry(m.INQUIRY_EXPIRED, payload)

    @leader_event_handler(m.WORKER, m.PACK_ENVIRONMENT)
    def on_pack_environment(self, payload: dict[str, Any]) -> None:
        """A tenant pack's environment build started or ended (worker)."""
        self._forward(f"pack:{payload.get('pack_id')}", lambda: n.for_pack_environment(payload))

    # The ordering lock is taken before any I/O, so per-entity arrival order is kept.
    def _forward(
        self, key: str, build: Callable[[], n.Notification | list[n.Notification] | None]
    ) -> None:
        with self.ordering.hold(key):
            try:
                built = build()
            except (KeyError, TypeError, ValueError):
                log.warning("notifier: malformed news for %s, dropped", key, exc_info=True)
                return
            notifications = built if isinstance(built, list) else [built]
            payloads = [item.to_payload() for item in notifications if item is not None]
            if payloads:
                self.broadcast(*payloads)

    def _forward_inquiry(self, event: str, payload: dict[str, Any]) -> None:
        key = f"inquiry:{n.inquiry_id_of(payload)}"
        self._forward(key, lambda: self._inquiry(event, payload))

    def _event(self, payload: dict[str, Any]) -> n.Notification | None:
        if payload.get("event"):  # small events travel with their news (events.announcement)
            return n.for_event(payload["event"])
        with transaction(self.platform.engine) as conn:
            row = n.read_event(conn, int(payload["tenant_id"]), int(payload["event_id"]))
        if row is None:
            log.warning("notifier: event %s not found", payload["event_id"])
            return None
        return n.for_event(row)

    def _rule_triggered(self, payload: dict[str, Any]) -> n.Notification:
        tenant_id = int(payload["tenant_id"])
        with transaction(self.platform.engine) as conn:
            rule_ref = n.read_rule_ref(conn, tenant_id, int(payload["rule_id"]))
            event_id = payload.get("event_id")
            event = n.read_event(conn, tenant_id, int(event_id)) if event_id else None
        return n.for_rule_triggered(payload, rule_ref, event)

    def _inquiry(self, event: str, payload: dict[str, Any]) -> n.Notification:
        inquiry_id = n.inquiry_id_of(payload)
        inquiry = payload.get("inquiry")
        if not inquiry and inquiry_id is not None:
            with transaction(self.platform.engine) as conn:
                inquiry = n.read_inquiry(conn, int(payload["tenant_id"]), int(inquiry_id))
        return n.for_inquiry(event, payload, inquiry)
