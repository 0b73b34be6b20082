"""Execution triggers (trigger type `execution`): an event when an execution of the tenant ends.

The event is inserted by the terminal transition's own statement (`fired`, a CTE of
executions.transition for terminal targets), so it is committed with the status change or not
at all: nothing is lost when a process dies after the commit (the executor evaluates events left
unprocessed), a repeated transition finds nothing to move, and the idempotency key
`execution:<id>` makes a second event per (trigger, execution) impossible. A tenant with no
enabled rule on an execution trigger pays one probe of a partial index and no message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    String,
    Text,
    and_,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import events as events_repo
from .catalog import Problems, check_unknown
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


def _iso(moment: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQL: a timestamp as api.md writes it (db.isoformat: UTC, milliseconds, `Z`)."""
    return func.to_char(func.timezone("UTC", moment), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')


def payload(moved: CTE) -> ColumnElement[Any]:
    """SQL: the event payload (packs.md, "Execution triggers"). The result is the stored one,
    which is what the API serves: secrets are masked before a result is stored.
    (A `trace_id` column, once executions have one, is added here.)"""
    c = moved.c
    return func.jsonb_build_object(
        "execution_id", c.id, "action_ref", c.action_ref, "status", c.status,
        "result", c.result, "started_at", _iso(c.started_at),
        "finished_at", _iso(c.finished_at), "parent_execution_id", c.parent_execution_id,
    )


def fired(moved: CTE) -> CTE:
    """The INSERT of one event per matching, active execution trigger visible to the moved
    execution's tenant with an enabled rule of that tenant; RETURNING the events' ids."""
    c, params = moved.c, triggers.c.parameters
    matches = and_(
        triggers.c.type == TriggerType.EXECUTION.value,
        triggers.c.status == "active",
        or_(triggers.c.tenant_id == c.tenant_id, triggers.c.tenant_id.is_(None)),
        or_(not_(params.has_key("status")),
            params["status"].contains(func.jsonb_build_array(c.status))),
        or_(not_(params.has_key("action")), params["action"].astext == c.action_ref),
        or_(not_(params.has_key("pack")),
            params["pack"].astext == func.split_part(c.action_ref, ".", 1)),
        exists().where(rules.c.trigger_id == triggers.c.id, rules.c.enabled,
                       rules.c.tenant_id == c.tenant_id),
    )
    depth = func.coalesce(events_repo.caused_depth(c.id, c.tenant_id), 0) + 1
    rows = select(
        c.tenant_id, triggers.c.id, triggers.c.ref, literal(SOURCE, String), payload(moved),
        literal(KEY_PREFIX, String) + cast(c.id, Text), c.id, depth,
    ).select_from(moved.join(triggers, matches))
    return (
        pg_insert(events)
        .from_select(["tenant_id", "trigger_id", "trigger_ref", "source", "payload",
                      "idempotency_key", "caused_by_execution_id", "chain_depth"], rows)
        .on_conflict_do_nothing(index_elements=["trigger_id", "idempotency_key"],
                                index_where=events.c.idempotency_key.isnot(None))
        .returning(events.c.id)
        .cte("fired")
    )
