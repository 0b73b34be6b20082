"""with-items fan-out: one child execution per element, at most `concurrency` at once.

The parent never reaches a worker: it goes requested → running with
`state = {"with_items": {"count", "concurrency"}}`, and what is still pending is derived from
its children (those still `requested`, in item order). Every top-up holds the parent row lock,
so duplicated status messages or several executors cannot over-schedule.

Canceling the parent cancels the children that have not started and moves running ones to
`canceling` (their worker stops the process group); once all are terminal the parent ends
`canceled`.

A child is planned like any execution (scheduling.plan): it may go to a worker, or be a
workflow or a retry parent of its own. Workflow tasks with `with_items` start it with their
rendered children (`start(..., children=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..domain import executions, templating
from ..domain.crypto import Cipher
from ..domain.states import TERMINAL_STATES, ExecutionStatus
from . import engines, lifecycle, parents, repository, scheduling
from .news import Outgoing, created, status_changed

S = ExecutionStatus
STATE_KEY = engines.WITH_ITEMS


def is_parent(row: Mapping[str, Any]) -> bool:
    return STATE_KEY in (row.get("state") or {})


def start(
    conn: Connection, cipher: Cipher, parent: Mapping[str, Any], action: Mapping[str, Any],
    *, children: list[tuple[dict[str, Any], Any]] | None = None,
    concurrency: int | None = None, **links: Any,
) -> list[Outgoing]:
    """Fan out a `requested` parent: over the action's `with_items`, or over `children`
    ((parameters, item) pairs a workflow task rendered, with its `concurrency` and `links`)."""
    if children is not None:
        return _fan_out(conn, cipher, parent, action, children, concurrency, **links)
    return _expand(conn, cipher, parent, action)


def _expand(
    conn: Connection, cipher: Cipher, parent: Mapping[str, Any], action: Mapping[str, Any]
) -> list[Outgoing]:
    """Render the action's `with_items`, create the children and schedule the first ones."""
    params = dict(parent["parameters"] or {})
    try:
        items = templating.render(action["with_items"], {**params, "params": params})
    except templating.TemplateError as exc:
        return lifecycle.fail(conn, parent, "template", str(exc))
    if not isinstance(items, list):
        return lifecycle.fail(
            conn, parent, "template",
            f"with_items {action['with_items']!r} must render to a list, "
            f"got {type(items).__name__}",
        )
    children = [({**params, "item": item}, item) for item in items]
    return _fan_out(conn, cipher, parent, action, children, action.get("concurrency"))


def _fan_out(
    conn: Connection,
    cipher: Cipher,
    parent: Mapping[str, Any],
    action: Mapping[str, Any],
    children: list[tuple[dict[str, Any], Any]],
    concurrency: int | None,
    **links: Any,
) -> list[Outgoing]:
    """`requested` parent → running with one child per (parameters, item), then top up.

    `links` are extra columns for every child (a workflow task's retry policy or timeout).
    """
    state = {STATE_KEY: {"count": len(children),
                         "concurrency": concurrency if concurrency and concurrency > 0 else None}}
    running = lifecycle.to_running(conn, parent, state)
    if running is None:
        return []
    out = [status_changed(running)]
    for index, (parameters, item) in enumerate(children):
        child = executions.create(
            conn,
            tenant_id=running["tenant_id"],
            action=action,
            parameters=parameters,
            actor_type="service",
            actor="executor",
            parent_execution_id=running["id"],
            item_index=index,
            item=item,
            trigger_data=running["trigger_data"],
            trace_id=running["trace_id"],
            **links,
        )
        out.append(created(child))
    return out + advance(conn, cipher, running)


def advance(conn: Connection, cipher: Cipher, parent: Mapping[str, Any]) -> list[Outgoing]:
    """Schedule pending children into free slots; finish the parent when all are terminal.

    The caller holds the parent row lock (or created the parent in this transaction).
    """
    if parent["status"] not in (S.RUNNING, S.CANCELING) or not is_parent(parent):
        return []
    tenant_id, parent_id = parent["tenant_id"], parent["id"]
    spec = parent["state"][STATE_KEY]
    out: list[Outgoing] = []
    if parent["status"] == S.CANCELING:
        # Every unfinished child: pending ones → canceled, running ones → canceling (their
        # worker stops the process group), executor-run ones cascade further down.
        out += parents.cancel_children(
            conn, cipher, parent, f"Canceled with its with-items parent {parent_id}"
        )
    counts = repository.children_status_counts(conn, tenant_id, parent_id)
    unfinished = sum(n for status, n in counts.items() if status not in TERMINAL_STATES)
    if parent["status"] == S.CANCELING:
        return out + (_finish(conn, parent) if unfinished == 0 else [])
    if unfinished == 0 and sum(counts.values()) >= spec["count"]:
        return _finish(conn, parent)
    pending = counts.get(S.REQUESTED, 0)
    active = unfinished - pending
    slots = pending if spec.get("concurrency") is None else spec["concurrency"] - active
    if slots <= 0 or pending == 0:
        return []
    for child in repository.children_in_status(conn, tenant_id, parent_id, S.REQUESTED, slots):
        out += scheduling.plan(conn, child, cipher)  # a worker, or a workflow/retry of its own
    return out


def _finish(conn: Connection, parent: Mapping[str, Any]) -> list[Outgoing]:
    children = repository.children_results(conn, parent["tenant_id"], parent["id"])
    outputs = [(c["result"] or {}).get("output") for c in children]
    failed = [c["item_index"] for c in children if c["status"] != S.SUCCEEDED]
    duration_ms = _duration_ms(parent.get("started_at"))
    if parent["status"] == S.CANCELING:
        result = executions.error_result(
            "canceled", "Canceled; children that had not started were canceled",
            output=outputs, duration_ms=duration_ms,
        )
        return lifecycle.canceled(conn, parent, result)
    if not failed:
        result = {**executions.empty_result(), "output": outputs, "duration_ms": duration_ms}
        return lifecycle.succeed(conn, parent, result)
    message = (
        f"{len(failed)} of {len(children)} items failed "
        f"(item indexes: {', '.join(str(i) for i in failed)})"
    )
    return lifecycle.fail(
        conn, parent, "child_failed", message, expected=[S.RUNNING],
        result_fields={"output": outputs, "duration_ms": duration_ms}, failed_indexes=failed,
    )


def _duration_ms(started_at: datetime | None) -> int | None:
    if started_at is None:
        return None
    return int((datetime.now(UTC) - started_at).total_seconds() * 1000)


ENGINE = engines.Engine(
    kind=STATE_KEY,
    claims=lambda row, action: bool(action.get("with_items")) and row["item_index"] is None,
    start=start,
    advance=advance,
)
