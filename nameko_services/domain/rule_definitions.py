"""Rule definitions: criteria and parameter-template validation, tenant repository, API shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import actions as actions_mod
from . import audit, templating
from . import parameters as params_mod
from . import triggers as triggers_mod
from .catalog import (
    CREATED,
    DELETED,
    UPDATED,
    Actor,
    Change,
    Outcome,
    Problems,
    check_name,
    check_unknown,
    optional_bool,
    optional_text,
    pack_ref_of,
    ref_of,
    rule_changed,
    writable_pack,
)
from .db import Row, isoformat
from .errors import ConflictError, NotFoundError, ValidationError
from .models import actions, rules, triggers

RULE_FIELDS = frozenset({
    "name", "description", "trigger", "action", "criteria", "parameters", "enabled",
    "notify_on_trigger",
})
PATCHABLE = frozenset({
    "enabled", "criteria", "parameters", "action", "notify_on_trigger", "description",
})


def _criteria(problems: Problems, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        problems.add("criteria", "must be a Jinja2 expression string")
        return None
    try:
        templating.check_expression(value)
    except templating.TemplateError as exc:
        problems.add("criteria", f"invalid expression: {exc.reason}")
    return value


def _parameters(problems: Problems, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add("parameters", "must be a mapping of parameter name to value or template")
        return {}
    for key, item in value.items():
        try:
            templating.check_template(item)
        except templating.TemplateError as exc:
            problems.add(f"parameters.{key}", f"invalid template: {exc.reason}")
    return dict(value)


def normalize(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a rule definition (API body or pack yaml); trigger/action stay unresolved."""
    problems = Problems("rule")
    check_unknown(problems, spec, RULE_FIELDS)
    name = check_name(problems, spec.get("name"))
    for key in ("trigger", "action"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            problems.add(key, "required: an id or a ref")
    values = {
        "name": name,
        "description": optional_text(problems, spec, "description"),
        "trigger": spec.get("trigger"),
        "action": spec.get("action"),
        "criteria": _criteria(problems, spec.get("criteria")),
        "parameters": _parameters(problems, spec.get("parameters")),
        "enabled": optional_bool(problems, spec, "enabled", True),
        "notify_on_trigger": optional_bool(problems, spec, "notify_on_trigger", False),
    }
    problems.raise_if_any()
    return values


def _joined() -> Select[Any]:
    return select(
        rules, triggers.c.ref.label("trigger_ref"), actions.c.ref.label("action_ref"),
        actions.c.parameters.label("action_parameters"),
    ).join(triggers, triggers.c.id == rules.c.trigger_id).join(
        actions, actions.c.id == rules.c.action_id
    )


def to_api(row: Row) -> dict[str, Any]:
    """The API shape; `trigger` and `action` are the refs, beside their ids."""
    return {
        "id": row["id"],
        "ref": row["ref"],
        "pack": pack_ref_of(row["ref"]) if row["pack_id"] else None,
        "pack_id": row["pack_id"],
        "name": row["name"],
        "description": row["description"],
        "trigger": row["trigger_ref"],
        "trigger_id": row["trigger_id"],
        "action": row["action_ref"],
        "action_id": row["action_id"],
        "criteria": row["criteria"],
        "parameters": params_mod.mask_literals(
            row["parameters"], params_mod.secret_names(row.get("action_parameters") or {})
        ),
        "enabled": row["enabled"],
        "notify_on_trigger": row["notify_on_trigger"],
        "tenant_id": row["tenant_id"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def get(conn: Connection, tenant_id: int, rule_id: int) -> dict[str, Any]:
    """One of the tenant's rules with its trigger and action refs, else NotFoundError."""
    row = conn.execute(
        _joined().where(rules.c.id == rule_id, rules.c.tenant_id == tenant_id)
    ).mappings().first()
    if row is None:
        raise NotFoundError(f"Rule {rule_id} not found")
    return dict(row)


def list_rules(
    conn: Connection, tenant_id: int, *, trigger_id: int | None = None,
    action_id: int | None = None, enabled: bool | None = None, pack_ref: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's rules, newest first, with the total; filters combine."""
    where = [rules.c.tenant_id == tenant_id]
    if trigger_id is not None:
        where.append(rules.c.trigger_id == trigger_id)
    if action_id is not None:
        where.append(rules.c.action_id == action_id)
    if enabled is not None:
        where.append(rules.c.enabled.is_(enabled))
    if pack_ref:
        where.append(rules.c.ref.startswith(f"{pack_ref}.", autoescape=True))
    total = conn.execute(select(func.count()).select_from(rules).where(*where)).scalar_one()
    rows = conn.execute(
        _joined().where(*where).order_by(rules.c.created_at.desc(), rules.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings()
    return [to_api(r) for r in rows], total


def stored_values(
    conn: Connection, tenant_id: int, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Column values of a normalised rule, with trigger and action resolved for the tenant."""
    trigger = triggers_mod.resolve(conn, tenant_id, values["trigger"], "trigger")
    action = actions_mod.resolve(conn, tenant_id, values["action"], "action")
    stored = {k: v for k, v in values.items() if k not in ("trigger", "action")}
    return {**stored, "trigger_id": trigger["id"], "action_id": action["id"]}


def insert_row(
    conn: Connection, *, tenant_id: int, pack_id: int | None, ref: str,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Insert resolved rule values; a taken ref is ConflictError."""
    try:
        with conn.begin_nested():
            rule_id = conn.execute(
                insert(rules).values(tenant_id=tenant_id, pack_id=pack_id, ref=ref, **values)
                .returning(rules.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise ConflictError(f"Rule '{ref}' exists", {"ref": ref}) from exc
    return get(conn, tenant_id, rule_id)


def update_row(
    conn: Connection, row: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    conn.execute(update(rules).where(rules.c.id == row["id"])
                 .values(**values, updated_at=func.now()))
    return get(conn, row["tenant_id"], row["id"])


def record(conn: Connection, row: Mapping[str, Any], op: str, actor: Actor) -> Change:
    """Audit a rule change and return the news the sensor and executor react to."""
    audit.record(conn, tenant_id=row["tenant_id"], actor_type=actor.type, actor=actor.name,
                 action=f"rule.{op}", entity_type="rule", entity_id=row["id"],
                 details={"ref": row["ref"], "enabled": row["enabled"]})
    return rule_changed(row, op)


def create(
    conn: Connection, *, tenant_id: int, body: Mapping[str, Any], actor: Actor
) -> Outcome:
    """POST /rules: validate, resolve trigger and action among the visible ones, insert."""
    values = normalize({k: v for k, v in body.items() if k != "pack"})
    pack = writable_pack(conn, tenant_id, body["pack"], "rule") if body.get("pack") else None
    stored = stored_values(conn, tenant_id, values)
    row = insert_row(conn, tenant_id=tenant_id, pack_id=pack["id"] if pack else None,
                     ref=ref_of(pack["ref"] if pack else None, values["name"]), values=stored)
    return Outcome(to_api(row), [record(conn, row, CREATED, actor)])


def update_rule(
    conn: Connection, *, tenant_id: int, rule_id: int, patch: Mapping[str, Any], actor: Actor
) -> Outcome:
    """PATCH /rules/{id}: enabled, criteria, parameters, action, notify_on_trigger, description."""
    row = get(conn, tenant_id, rule_id)
    unknown = {k: "cannot be changed" for k in patch if k not in PATCHABLE}
    if unknown:
        raise ValidationError(f"Invalid rule: {next(iter(unknown))}: cannot be changed", unknown)
    current = {"name": row["name"], "description": row["description"],
               "trigger": row["trigger_id"], "action": row["action_id"],
               "criteria": row["criteria"], "parameters": row["parameters"],
               "enabled": row["enabled"], "notify_on_trigger": row["notify_on_trigger"]}
    values = normalize({**current, **patch})
    updated = update_row(conn, row, stored_values(conn, tenant_id, values))
    return Outcome(to_api(updated), [record(conn, updated, UPDATED, actor)])


def remove(conn: Connection, row: Mapping[str, Any], actor: Actor) -> list[Change]:
    conn.execute(delete(rules).where(rules.c.id == row["id"]))
    return [record(conn, row, DELETED, actor)]


def delete_rule(conn: Connection, tenant_id: int, rule_id: int, actor: Actor) -> Outcome:
    """DELETE /rules/{id}; in-flight executions finish, no new firing."""
    return Outcome(None, remove(conn, get(conn, tenant_id, rule_id), actor))
