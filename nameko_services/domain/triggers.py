"""Triggers: validation of each type's parameters, the tenant-scoped repository and API shape."""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import audit, execution_triggers, messages, schedules
from .catalog import (
    CREATED,
    DELETED,
    Actor,
    Change,
    Outcome,
    Problems,
    check_name,
    check_unknown,
    check_writable,
    count_and_page,
    drop_rules,
    get_visible,
    is_number,
    optional_text,
    own_first,
    pack_ref_of,
    ref_of,
    visible,
    writable_pack,
)
from .db import Row, isoformat
from .errors import ConflictError, ValidationError
from .models import rules, triggers
from .states import TIMER_TYPES, TriggerType

TRIGGER_FIELDS = frozenset({"name", "type", "parameters", "description"})
TYPES = [t.value for t in TriggerType]


def _check_date(problems: Problems, value: Any) -> str | None:
    if not isinstance(value, str):
        problems.add("parameters.date", "required: an RFC 3339 date such as 2026-01-27T10:30:00Z")
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.add("parameters.date", "must be an RFC 3339 date such as 2026-01-27T10:30:00Z")
        return None
    if moment.tzinfo is None:  # no offset given: read as UTC rather than the server's zone
        moment = moment.replace(tzinfo=UTC)
    return isoformat(moment)


def _check_cron(problems: Problems, params: Mapping[str, Any]) -> dict[str, Any]:
    expression, timezone = params.get("expression"), params.get("timezone", "UTC")
    if not isinstance(expression, str) or not expression.strip():
        problems.add("parameters.expression", "required: a cron expression")
    else:
        expression = " ".join(expression.split())
        fields = len(expression.split(" "))
        if fields not in (5, 6) or not croniter.is_valid(
            expression, second_at_beginning=fields == 6
        ):
            problems.add(
                "parameters.expression",
                "must be a cron expression of 6 fields (seconds first) or 5 fields",
            )
    if not isinstance(timezone, str):
        problems.add("parameters.timezone", "must be an IANA time zone name such as Europe/Paris")
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.add("parameters.timezone", f"unknown time zone '{timezone}'")
    return {"expression": expression, "timezone": timezone}


def normalize_parameters(problems: Problems, kind: str, params: Any) -> dict[str, Any]:
    """The stored parameters of a trigger type (dates in UTC, cron timezone defaulted)."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        problems.add("parameters", "must be a mapping")
        return {}
    if kind == TriggerType.INTERVAL:
        check_unknown(problems, params, {"seconds"}, "parameters.")
        seconds = params.get("seconds")
        if not is_number(seconds) or seconds <= 0:
            problems.add("parameters.seconds", "required: a number of seconds greater than 0")
        return {"seconds": seconds}
    if kind == TriggerType.DATE:
        check_unknown(problems, params, {"date"}, "parameters.")
        return {"date": _check_date(problems, params.get("date"))}
    if kind == TriggerType.CRON:
        check_unknown(problems, params, {"expression", "timezone"}, "parameters.")
        return _check_cron(problems, params)
    if kind == TriggerType.WEBHOOK:
        check_unknown(problems, params, set(), "parameters.")
        return {}
    if kind == TriggerType.EXECUTION:
        return execution_triggers.normalize_parameters(problems, params)
    return dict(params)  # custom: free-form (e.g. a payload schema), emitted by a pack sensor


def normalize(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a trigger definition (API body or pack yaml); return the values to store."""
    problems = Problems("trigger")
    check_unknown(problems, spec, TRIGGER_FIELDS)
    name = check_name(problems, spec.get("name"))
    kind = spec.get("type")
    params: dict[str, Any] = {}
    if kind not in TYPES:
        problems.add("type", f"required: one of {TYPES}")
    else:
        params = normalize_parameters(problems, kind, spec.get("parameters"))
        if kind in TIMER_TYPES and not problems.fields:
            try:  # the sensor's own parser must accept what we store
                schedules.check(kind, params)
            except schedules.ScheduleError as exc:
                problems.add(f"parameters.{exc.field}", exc.message)
    description = optional_text(problems, spec, "description")
    problems.raise_if_any()
    return {"name": name, "type": kind, "parameters": params, "description": description}


def new_token() -> str:
    return pysecrets.token_urlsafe(32)


def to_api(
    row: Mapping[str, Any], tenant_id: int | None, *, reveal_token: bool = True
) -> dict[str, Any]:
    """The API shape; only the owning tenant sees a webhook's token (and not its viewers)."""
    data = {
        "id": row["id"],
        "ref": row["ref"],
        "pack": pack_ref_of(row["ref"]) if row["pack_id"] else None,
        "pack_id": row["pack_id"],
        "name": row["name"],
        "type": row["type"],
        "parameters": row["parameters"],
        "description": row["description"],
        "status": row["status"],
        "tenant_id": row["tenant_id"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }
    if row["type"] == TriggerType.WEBHOOK:
        data["webhook_url"] = f"/api/v1/webhooks/{row['id']}"
        if reveal_token and row["tenant_id"] is not None and row["tenant_id"] == tenant_id:
            data["webhook_token"] = row["webhook_token"]
    return data


def changed(row: Row, op: str) -> Change:
    return Change(messages.TRIGGER_CHANGED,
                  {"trigger_id": row["id"], "tenant_id": row["tenant_id"], "op": op})


def get(conn: Connection, tenant_id: int | None, trigger_id: int) -> dict[str, Any]:
    """One trigger the tenant may read (its own or a system one), else NotFoundError."""
    return get_visible(conn, triggers, tenant_id, trigger_id, "Trigger")


def find(conn: Connection, tenant_id: int | None, ref: str) -> dict[str, Any] | None:
    """The visible trigger with this ref (the tenant's own before a system one)."""
    row = conn.execute(
        select(triggers).where(triggers.c.ref == ref, visible(triggers, tenant_id))
        .order_by(own_first(triggers)).limit(1)
    ).mappings().first()
    return dict(row) if row else None


def resolve(conn: Connection, tenant_id: int | None, value: Any, field: str) -> dict[str, Any]:
    """A trigger named by id or ref in a request body; unknown is 422 naming the field."""
    row: Row | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        row = conn.execute(
            select(triggers).where(triggers.c.id == value, visible(triggers, tenant_id))
        ).mappings().first()
    elif isinstance(value, str) and value:
        row = find(conn, tenant_id, value)
        if row is None and value.isdigit() and len(value) < 19:
            return resolve(conn, tenant_id, int(value), field)
    if row is None:
        raise ValidationError(f"Unknown trigger {value!r}", {field: "no such trigger"})
    return dict(row)


def list_triggers(
    conn: Connection, tenant_id: int, *, kind: str | None = None, pack_ref: str | None = None,
    limit: int = 50, offset: int = 0, reveal_tokens: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's and system triggers, newest first, with the total."""
    where = [visible(triggers, tenant_id)]
    if kind:
        where.append(triggers.c.type == kind)
    if pack_ref:
        where.append(triggers.c.ref.startswith(f"{pack_ref}.", autoescape=True))
    rows, total = count_and_page(conn, triggers, where, limit, offset)
    return [to_api(r, tenant_id, reveal_token=reveal_tokens) for r in rows], total


def insert_row(
    conn: Connection, *, tenant_id: int | None, pack_id: int | None, ref: str,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Insert a validated trigger (a webhook gets its token); a taken ref is ConflictError."""
    token = new_token() if values["type"] == TriggerType.WEBHOOK else None
    try:
        with conn.begin_nested():
            row = conn.execute(
                insert(triggers).values(tenant_id=tenant_id, pack_id=pack_id, ref=ref,
                                        webhook_token=token, **values).returning(triggers)
            ).mappings().one()
    except IntegrityError as exc:
        raise ConflictError(f"Trigger '{ref}' exists", {"ref": ref}) from exc
    return dict(row)


def update_row(
    conn: Connection, row: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Apply new values; a changed schedule is a new timer (active again, never fired)."""
    extra: dict[str, Any] = {}
    if values["type"] != row["type"] or values["parameters"] != row["parameters"]:
        extra = {"status": "active", "last_fired_at": None, "fire_count": 0}
    if values["type"] != TriggerType.WEBHOOK:
        extra["webhook_token"] = None
    elif not row["webhook_token"]:
        extra["webhook_token"] = new_token()
    return dict(conn.execute(
        update(triggers).where(triggers.c.id == row["id"])
        .values(**values, **extra, updated_at=func.now()).returning(triggers)
    ).mappings().one())


def record(conn: Connection, row: Row, op: str, actor: Actor) -> Change:
    """Audit a trigger change and return the news to publish after commit."""
    audit.record(conn, tenant_id=row["tenant_id"], actor_type=actor.type, actor=actor.name,
                 action=f"trigger.{op}", entity_type="trigger", entity_id=row["id"],
                 details={"ref": row["ref"], "type": row["type"]})
    return changed(row, op)


def create(
    conn: Connection, *, tenant_id: int, body: Mapping[str, Any], actor: Actor
) -> Outcome:
    """POST /triggers `{pack?, name, type, parameters, description?}` → the new trigger."""
    values = normalize({k: v for k, v in body.items() if k != "pack"})
    pack = writable_pack(conn, tenant_id, body["pack"], "trigger") if body.get("pack") else None
    ref = ref_of(pack["ref"] if pack else None, values["name"])
    row = insert_row(conn, tenant_id=tenant_id, pack_id=pack["id"] if pack else None, ref=ref,
                     values=values)
    return Outcome(to_api(row, tenant_id), [record(conn, row, CREATED, actor)])


def remove(conn: Connection, row: Mapping[str, Any], actor: Actor) -> list[Change]:
    """Delete a trigger and the rules that use it; returns the changes to publish."""
    result = drop_rules(conn, rules.c.trigger_id == row["id"], actor,
                        f"trigger {row['ref']} deleted")
    conn.execute(delete(triggers).where(triggers.c.id == row["id"]))
    return [*result, record(conn, row, DELETED, actor)]


def delete_trigger(conn: Connection, tenant_id: int, trigger_id: int, actor: Actor) -> Outcome:
    """DELETE /triggers/{id}: its rules go with it; a system trigger is 403."""
    row = get(conn, tenant_id, trigger_id)
    check_writable(row, tenant_id, "Trigger")
    return Outcome(None, remove(conn, row, actor))


