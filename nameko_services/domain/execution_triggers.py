"""Execution triggers (trigger type `execution`): an event when an execution of the tenant ends.

The terminal transition's own statement says whether the tenant has any execution trigger
(`possible`, a column of executions.transition for terminal targets) and, only when it has,
`fire` stores the events of the matching ones in the same transaction, so they are committed
with the status change or not at all:
nothing is lost when a process dies after the commit (the executor evaluates events left
unprocessed), a repeated transition finds nothing to move, and the idempotency key
`execution:<id>` makes a second event per (trigger, execution) impossible. A tenant with no
execution trigger pays one probe of a partial index: no statement, no message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    CTE,
    Connection,
    Exists,
    String,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import events as events_repo
from . import tracing
from .catalog import Problems, check_unknown
from .db import isoformat
from .models import events, rules, triggers
from .states import TERMINAL_STATES, TriggerType

FILTERS = frozenset({"action", "pack", "status"})
SOURCE = "execution"
KEY_PREFIX = "execution:"


def normalize_parameters(problems: Problems, params: Mapping[str, Any]) -> dict[str, Any]:
    """The optional filters: `action` (a ref), `pack` (a ref), `status` (terminal statuses)."""
    check_unknown(problems, params, FILTERS, "parameters.")
    out: dict[str, Any] = {}
    for name in ("action", "pack"):
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            problems.add(f"parameters.{name}", "must be a non-empty string (a ref)")
            continue
        out[name] = value.strip()
    statuses = params.get("status")
    if statuses is not None:
        allowed = sorted(s.value for s in TERMINAL_STATES)
        if (not isinstance(statuses, list) or not statuses
                or any(s not in allowed for s in statuses)):
            problems.add("parameters.status", f"must be a non-empty list of {allowed}")
        else:
            out["status"] = list(dict.fromkeys(statuses))
    return out


def possible(moved: CTE) -> Exists:
    """SQL: has the moved execution's tenant (or the system) any `execution` trigger at all?
    False in the usual case, at the cost of one probe of the partial index
    `ix_triggers_execution` (a cheap plan too: this runs with every terminal transition)."""
    return exists().where(
        triggers.c.type == TriggerType.EXECUTION.value,
        or_(triggers.c.tenant_id == moved.c.tenant_id, triggers.c.tenant_id.is_(None)),
    )


def payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The event payload (packs.md, "Execution triggers"). The result is the stored one, which
    is what the API serves: secrets are masked before a result is stored."""
    return {
        "execution_id": row["id"], "action_ref": row["action_ref"], "status": row["status"],
        "result": row["result"], "started_at": isoformat(row["started_at"]),
        "finished_at": isoformat(row["finished_at"]),
        "parent_execution_id": row["parent_execution_id"], "trace_id": row.get("trace_id"),
    }


def fire(conn: Connection, row: Mapping[str, Any]) -> list[int]:
    """Store an event for the execution `row` that just ended, in the transaction of its
    transition, of each active `execution` trigger visible to its tenant whose filters match
    and that an enabled rule of the tenant uses; returns the new events' ids (none for a
    (trigger, execution) seen before). `chain_depth` is one deeper than the event behind the
    execution; the event continues the execution's trace."""
    params = triggers.c.parameters
    status, action_ref = literal(row["status"], String), literal(row["action_ref"], String)
    depth = func.coalesce(
        events_repo.caused_depth(literal(row["id"]), literal(row["tenant_id"])), 0) + 1
    values = select(
        literal(row["tenant_id"]), triggers.c.id, triggers.c.ref, literal(SOURCE, String),
        literal(payload(row), JSONB), literal(f"{KEY_PREFIX}{row['id']}", String),
        literal(row["id"]), depth, literal(row.get("trace_id") or tracing.new_trace_id(), String),
    ).where(
        triggers.c.type == TriggerType.EXECUTION.value,
        triggers.c.status == "active",
        or_(triggers.c.tenant_id == row["tenant_id"], triggers.c.tenant_id.is_(None)),
        or_(not_(params.has_key("status")),
            params["status"].contains(func.jsonb_build_array(status))),
        or_(not_(params.has_key("action")), params["action"].astext == action_ref),
        or_(not_(params.has_key("pack")),
            params["pack"].astext == func.split_part(action_ref, ".", 1)),
        exists().where(rules.c.trigger_id == triggers.c.id, rules.c.enabled,
                       rules.c.tenant_id == row["tenant_id"]),
    )
    inserted = conn.execute(
        pg_insert(events)
        .from_select(["tenant_id", "trigger_id", "trigger_ref", "source", "payload",
                      "idempotency_key", "caused_by_execution_id", "chain_depth", "trace_id"],
                     values)
        .on_conflict_do_nothing(index_elements=["trigger_id", "idempotency_key"],
                                index_where=events.c.idempotency_key.isnot(None))
        .returning(events.c.id)
    ).scalars()
    return sorted(inserted)
