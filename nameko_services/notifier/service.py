"""NotifierService: domain news in, tenant-scoped notifications out (entrypoints only)."""

from __future__ import annotations

import logging
from typing import Any

from ..domain import messages as m
from ..domain.db import transaction
from ..extensions import Delivery, Listening, MessageContext, PlatformProvider, rpc
from . import notifications as n
from .broadcast import Broadcast
from .coalescing import RuleTriggerCoalescing
from .leader import leader_batch_handler

log = logging.getLogger(__name__)

Built = n.Notification | list[n.Notification] | None


def payloads_of(built: Built) -> list[dict[str, Any]]:
    """The NOTIFICATION_PUBLISHED payloads of what a builder made."""
    notifications = built if isinstance(built, list) else [built]
    return [item.to_payload() for item in notifications if item is not None]


class NotifierService:
    """Maps execution/event/rule/inquiry news to api.md messages and broadcasts them, in order.

    The news is consumed in batches (extensions.BatchEventHandler): one worker at a time takes
    what arrived meanwhile, in arrival order, and publishes its notifications in one broadcast,
    so news about one entity leaves in the order it arrived. Of several replicas one consumes
    the news (leader.py); the others answer ping and stand by. The news of a tenant no gateway
    listens for (domain/presence.py: events, inquiries) is consumed and dropped unmapped.
    """

    name = "notifier"

    platform = PlatformProvider()
    context = MessageContext()  # logs and spans in the context of the message handled
    broadcast = Broadcast()
    coalescing = RuleTriggerCoalescing()
    listening = Listening()

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok"}

    @leader_batch_handler(m.EXECUTIONS, m.EXECUTION_CREATED)
    @leader_batch_handler(m.EXECUTIONS, m.EXECUTION_STATUS_CHANGED)
    @leader_batch_handler(m.EXECUTIONS, m.EXECUTION_OUTPUT)
    @leader_batch_handler(m.GATEWAY, m.EVENT_CREATED)
    @leader_batch_handler(m.SENSOR, m.EVENT_CREATED)
    @leader_batch_handler(m.EXECUTOR, m.EVENT_CREATED)
    @leader_batch_handler(m.EXECUTOR, m.EVENT_PROCESSED)
    @leader_batch_handler(m.EXECUTOR, m.RULE_TRIGGERED)
    @leader_batch_handler(m.EXECUTOR, m.INQUIRY_CREATED)
    @leader_batch_handler(m.EXECUTOR, m.INQUIRY_RESPONDED)
    @leader_batch_handler(m.EXECUTOR, m.INQUIRY_EXPIRED)
    @leader_batch_handler(m.WORKER, m.PACK_ENVIRONMENT)
    def on_news(self, batch: list[Delivery]) -> None:
        """The notifications of the news that arrived together, in arrival order, in one
        broadcast; returns once the broker confirmed it, so the news is acked after it left."""
        self._broadcast([payload for delivery in batch for payload in self._notify(delivery)])

    def _broadcast(self, payloads: list[dict[str, Any]]) -> None:
        if payloads:
            self.broadcast(*payloads)

    def _notify(self, delivery: Delivery) -> list[dict[str, Any]]:
        """The broadcast payloads one piece of news makes (none when malformed: dropped)."""
        event_type, payload = delivery.event_type, delivery.payload
        if isinstance(payload, dict) and not self.listening(payload.get("tenant_id")):
            return []
        try:
            built = self._build(event_type, payload)
        except (KeyError, TypeError, ValueError):
            log.warning("notifier: malformed %s news, dropped", event_type, exc_info=True)
            return []
        return payloads_of(built)

    def _build(self, event_type: str, payload: dict[str, Any]) -> Built:
        if event_type == m.EXECUTION_CREATED:  # then the changes the executor folded in
            return [n.for_execution(m.EXECUTION_CREATED, payload),
                    *(n.for_execution(m.EXECUTION_STATUS_CHANGED, later)
                      for later in payload.get("then") or ())]
        if event_type == m.EXECUTION_STATUS_CHANGED:
            return n.for_execution(m.EXECUTION_STATUS_CHANGED, payload)
        if event_type == m.EXECUTION_OUTPUT:  # a running action's lines (worker, live output)
            return n.for_execution_output(payload)
        if event_type == m.EVENT_CREATED:  # gateway, sensor, or an execution trigger's (executor)
            return self._event(payload)
        if event_type == m.EVENT_PROCESSED:  # no execution started: a waiting webhook answers
            return n.for_event_processed(payload)
        if event_type == m.RULE_TRIGGERED:
            return self._coalesced_rule_triggered(payload)
        if event_type in n.INQUIRY_EVENTS:
            return self._inquiry(event_type, payload)
        if event_type == m.PACK_ENVIRONMENT:  # a tenant pack's environment build (worker)
            return n.for_pack_environment(payload)
        raise ValueError(f"no notification for {event_type}")

    def _coalesced_rule_triggered(self, payload: dict[str, Any]) -> Built:
        """At most one rule.triggered per rule per window, carrying a `count`: the first now,
        the ones held meanwhile later in one message (its own broadcast)."""
        key = f"rule:{payload.get('rule_id')}"
        decision = self.coalescing.offer(key, payload)
        if decision.send_now:
            return self._rule_triggered({**payload, "count": 1})
        if decision.flush_in is not None:
            self.coalescing.flush_later(key, decision.flush_in, lambda held, count: (
                self._broadcast(payloads_of(self._rule_triggered({**held, "count": count})))))
        return None

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
