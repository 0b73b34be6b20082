"""Domain news → api.md notification messages, plus the few reads that enrich them.

Every builder returns a `Notification`: the tenant it belongs to, the message a WebSocket client
receives, and an ordering key (news about one entity must leave in the order it arrived).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ..domain import events as events_repo
from ..domain import messages as m
from ..domain.db import isoformat, utcnow
from ..domain.errors import NotFoundError
from ..domain.models import inquiries, rules

INQUIRY_EVENTS = (m.INQUIRY_CREATED, m.INQUIRY_RESPONDED, m.INQUIRY_EXPIRED)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for the WebSocket clients of one tenant."""

    tenant_id: int
    key: str
    message: dict[str, Any]

    def to_payload(self) -> dict[str, Any]:
        """The NOTIFICATION_PUBLISHED payload every gateway process receives."""
        return {"tenant_id": self.tenant_id, "message": self.message}


def now() -> str:
    return isoformat(utcnow()) or ""


def message(
    event: str, entity_type: str, entity_id: Any, data: dict[str, Any], timestamp: str | None
) -> dict[str, Any]:
    """The api.md envelope: {event, entity_type, entity_id, data, timestamp}."""
    return {
        "event": event,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "data": data,
        "timestamp": timestamp or now(),
    }


def for_execution(event: str, payload: Mapping[str, Any]) -> Notification:
    """execution.created / execution.status_changed from domain.executions.status_message()."""
    execution = dict(payload.get("execution") or {})
    execution_id = payload.get("execution_id", execution.get("id"))
    status = payload.get("status", execution.get("status"))
    data = {
        "execution_id": execution_id,
        "status": status,
        "previous": payload.get("previous"),
        "action_ref": execution.get("action_ref"),
        "parent_execution_id": payload.get(
            "parent_execution_id", execution.get("parent_execution_id")
        ),
        "trace_id": payload.get("trace_id", execution.get("trace_id")),
        "execution": execution,
    }
    stamp = execution.get("updated_at") or execution.get("created_at")
    return Notification(
        tenant_id=int(payload["tenant_id"]),
        key=f"execution:{execution_id}",
        message=message(event, "execution", execution_id, data, stamp),
    )


def for_execution_output(payload: Mapping[str, Any]) -> Notification:
    """execution.output: a batch of a running action's lines of one stream (already bounded
    and masked by the worker); `seq` counts the stream's messages from 1, so a client sees a
    gap, and `dropped` how many lines the rate bound left out (each place marked in `lines`)."""
    execution_id = payload["execution_id"]
    data = {
        "execution_id": execution_id,
        "stream": payload["stream"],
        "seq": int(payload["seq"]),
        "lines": list(payload["lines"]),
        "dropped": int(payload.get("dropped", 0)),
        "trace_id": payload.get("trace_id"),
    }
    return Notification(
        tenant_id=int(payload["tenant_id"]),
        key=f"execution:{execution_id}",
        message=message(m.EXECUTION_OUTPUT, "execution", execution_id, data, None),
    )


PACK_ENVIRONMENT_EVENTS = {"building": "pack.env_building", "ready": "pack.env_ready",
                           "failed": "pack.env_failed"}


def for_pack_environment(payload: Mapping[str, Any]) -> Notification:
    """pack.env_building / pack.env_ready / pack.env_failed: a pack's environment build
    started or ended, `elapsed_seconds` after it started; the whole log is at GET
    /api/v1/packs/<id>/environment."""
    pack_id = payload["pack_id"]
    data = {
        "pack_id": pack_id,
        "ref": payload.get("ref"),
        "version": payload.get("version"),
        "status": payload["status"],
        "elapsed_seconds": payload.get("elapsed_seconds"),
        "error": payload.get("error"),
    }
    return Notification(
        tenant_id=int(payload["tenant_id"]),
        key=f"pack:{pack_id}",
        message=message(PACK_ENVIRONMENT_EVENTS[payload["status"]], "pack", pack_id, data, None),
    )


def for_event(event_row: Mapping[str, Any]) -> Notification:
    """event.created, from the stored event (already in its API shape)."""
    data = {
        "event_id": event_row["id"],
        "trigger_id": event_row.get("trigger_id"),
        "trigger_ref": event_row.get("trigger_ref"),
        "source": event_row.get("source"),
        "payload": event_row.get("payload"),
        "trace_id": event_row.get("trace_id"),
        "event": dict(event_row),
    }
    return Notification(
        tenant_id=int(event_row["tenant_id"]),
        key=f"event:{event_row['id']}",
        message=message(m.EVENT_CREATED, "event", event_row["id"], data,
                        event_row.get("created_at")),
    )


def for_event_processed(payload: Mapping[str, Any]) -> Notification:
    """event.processed: the executor evaluated the event and started no execution."""
    event_id = payload["event_id"]
    data = {
        "event_id": event_id,
        "trigger_id": payload.get("trigger_id"),
        "executions": 0,
        "rules_matched": int(payload.get("rules_matched") or 0),
        "error": payload.get("error"),
    }
    return Notification(
        tenant_id=int(payload["tenant_id"]),
        key=f"event:{event_id}",
        message=message(m.EVENT_PROCESSED, "event", event_id, data, None),
    )


def for_rule_triggered(
    payload: Mapping[str, Any], rule_ref: str | None, event_row: Mapping[str, Any] | None
) -> Notification:
    """rule.triggered (only sent for rules with notify_on_trigger): the rule and its (latest)
    event; `count` is how many firings this message stands for (coalesced, see coalescing.py)."""
    rule_id = payload["rule_id"]
    data = {
        "rule_id": rule_id,
        "count": int(payload.get("count", 1)),
        "rule_ref": payload.get("rule_ref", rule_ref),
        "event_id": payload.get("event_id"),
        "execution_id": payload.get("execution_id"),
        "enforcement_id": payload.get("enforcement_id"),
        "trigger_ref": event_row.get("trigger_ref") if event_row else None,
        "event": dict(event_row) if event_row else None,
    }
    return Notification(
        tenant_id=int(payload["tenant_id"]),
        key=f"rule:{rule_id}",
        message=message(m.RULE_TRIGGERED, "rule", rule_id, data, None),
    )


def for_inquiry(
    event: str, payload: Mapping[str, Any], inquiry: Mapping[str, Any] | None
) -> Notification:
    """inquiry.created / inquiry.responded / inquiry.expired with the inquiry's details."""
    inquiry_id = inquiry_id_of(payload)
    details = dict(inquiry or payload.get("inquiry") or {})
    data = {
        "inquiry_id": inquiry_id,
        "execution_id": payload.get("execution_id", details.get("execution_id")),
        "status": details.get("status", payload.get("status")),
        "inquiry": details or None,
    }
    return Notification(
        tenant_id=int(payload["tenant_id"]),
        key=f"inquiry:{inquiry_id}",
        message=message(event, "inquiry", inquiry_id, data, None),
    )


def inquiry_id_of(payload: Mapping[str, Any]) -> Any:
    inquiry = payload.get("inquiry") or {}
    return payload.get("inquiry_id", inquiry.get("id"))


# Reads: the payloads carry ids; the rows say what happened.

def read_event(conn: Connection, tenant_id: int, event_id: int) -> dict[str, Any] | None:
    try:
        return events_repo.to_api(events_repo.get(conn, tenant_id, event_id))
    except NotFoundError:
        return None


def read_rule_ref(conn: Connection, tenant_id: int, rule_id: int) -> str | None:
    return conn.execute(
        select(rules.c.ref).where(rules.c.id == rule_id, rules.c.tenant_id == tenant_id)
    ).scalar_one_or_none()


def read_inquiry(conn: Connection, tenant_id: int, inquiry_id: int) -> dict[str, Any] | None:
    """The inquiry in api.md's shape, or None when it is gone."""
    row = conn.execute(
        select(inquiries).where(inquiries.c.id == inquiry_id, inquiries.c.tenant_id == tenant_id)
    ).mappings().one_or_none()
    if row is None:
        return None
    return {
        "id": row["id"],
        "execution_id": row["execution_id"],
        "prompt": row["prompt"],
        "schema": row["schema"],
        "status": row["status"],
        "ttl_seconds": row["ttl_seconds"],
        "expires_at": isoformat(row["expires_at"]),
        "default_response": row["default_response"],
        "response": row["response"],
        "responded_by": row["responded_by"],
        "responded_at": isoformat(row["responded_at"]),
        "created_at": isoformat(row["created_at"]),
    }
