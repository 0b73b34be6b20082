"""Messages the executor publishes, collected inside a transaction and sent after it commits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import tracing
from ..domain import executions, inquiries, messages
from ..domain.states import ExecutionStatus

Dispatch = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to publish; `source` None means the dispatching service's own exchange."""

    event_type: str
    payload: dict[str, Any]
    source: str | None = None


def created(row: Mapping[str, Any]) -> Outgoing:
    return Outgoing(
        messages.EXECUTION_CREATED, executions.status_message(row, None), messages.EXECUTIONS
    )


def status_changed(row: Mapping[str, Any]) -> Outgoing:
    """For a row returned by executions.transition (it carries `previous`)."""
    return Outgoing(
        messages.EXECUTION_STATUS_CHANGED,
        executions.status_message(row, row.get("previous")),
        messages.EXECUTIONS,
    )


def scheduled(row: Mapping[str, Any], parent_span_id: str | None = None) -> Outgoing:
    """The worker's work message (naming the span that scheduled it, when traced)."""
    return Outgoing(
        messages.EXECUTION_SCHEDULED,
        tracing.linked(executions.work_message(row), parent_span_id),
    )


def inquiry(event_type: str, row: Mapping[str, Any]) -> Outgoing:
    """INQUIRY_* for the notifier (executor source), with the inquiry in its API shape."""
    return Outgoing(event_type, {
        "inquiry_id": row["id"],
        "tenant_id": row["tenant_id"],
        "execution_id": row["execution_id"],
        "status": row["status"],
        "inquiry": inquiries.to_api(row),
    })


def send(dispatch: Dispatch, outgoing: Iterable[Outgoing]) -> None:
    """Publish in order (only ever call this after the transaction committed)."""
    for item in merged(outgoing):
        dispatch(item.event_type, item.payload, item.source)


def merged(outgoing: Iterable[Outgoing]) -> list[Outgoing]:
    """The news with each `requested → scheduled` change folded into the EXECUTION_CREATED
    message of the same execution, when both are here: one message instead of two on the
    hot path; the created message lists it under `then` and the notifier sends both
    notifications, in order. Anything else keeps its own message and its place."""
    out: list[Outgoing] = []
    created_at: dict[Any, int] = {}
    for item in outgoing:
        payload = item.payload
        if item.event_type == messages.EXECUTION_CREATED:
            created_at[payload["execution_id"]] = len(out)
        elif (item.event_type == messages.EXECUTION_STATUS_CHANGED
              and payload.get("status") == ExecutionStatus.SCHEDULED
              and payload["execution_id"] in created_at):
            index = created_at.pop(payload["execution_id"])
            first = out[index]
            out[index] = Outgoing(first.event_type, {
                **first.payload, "then": [*first.payload.get("then", []), payload]}, first.source)
            continue
        out.append(item)
    return out
