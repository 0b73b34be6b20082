"""Actions: the tenant-scoped repository, API create/patch/delete and the API shape.

Validation of the definition itself lives in action_spec (shared with pack yaml loading).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import action_spec, audit, pack_store
from . import parameters as params_mod
from .catalog import (
    CREATED,
    DELETED,
    UPDATED,
    Actor,
    Change,
    Outcome,
    check_writable,
    drop_rules,
    get_visible,
    own_first,
    pack_ref_of,
    page_visible,
    ref_of,
    visible,
    writable_pack,
)
from .db import Row, isoformat
from .errors import ConflictError, NotFoundError, ValidationError
from .models import actions, packs, rules

STORED_FIELDS = tuple(sorted(action_spec.ACTION_FIELDS))
PATCHABLE = action_spec.ACTION_FIELDS - {"name"}
_BLOCK_OWNERS = {"http_config": "http", "container_config": "container", "workflow": "workflow"}


def to_api(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API shape: every definition field plus identity and timestamps."""
    return {
        "id": row["id"],
        "ref": row["ref"],
        "pack": pack_ref_of(row["ref"]),
        "pack_id": row["pack_id"],
        "name": row["name"],
        "description": row["description"],
        "runner_type": row["runner_type"],
        "entry_point": row["entry_point"],
        "code": row["code"],
        "parameters": params_mod.mask_defaults(row["parameters"]),
        "timeout": row["timeout"],
        "retry": row["retry"],
        "with_items": row["with_items"],
        "concurrency": row["concurrency"],
        "concurrency_policy": row["concurrency_policy"],
        "secrets": row["secrets"],
        "http_config": row["http_config"],
        "container_config": row["container_config"],
        "workflow": row["workflow"],
        "limits": row["limits"],
        "tenant_id": row["tenant_id"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def pack_dir(conn: Connection, packs_root: Path, pack: Row) -> Path | None:
    """The folder on this host an action's entry_point is relative to (None for API-only
    packs): pack_store.local_folder, fetched into `packs_root` when this host lacks it."""
    try:
        return pack_store.local_folder(conn, packs_root, pack)
    except pack_store.PackContentError as exc:
        raise ConflictError(exc.message, {"pack": pack["ref"]}) from exc


def get(conn: Connection, tenant_id: int | None, action_id: int) -> dict[str, Any]:
    """One action the tenant may read (its own or a system one), else NotFoundError."""
    return get_visible(conn, actions, tenant_id, action_id, "Action")


def find(conn: Connection, tenant_id: int | None, ref: str) -> dict[str, Any] | None:
    """The visible action with this ref (the tenant's own before a system one)."""
    row = conn.execute(
        select(actions).where(actions.c.ref == ref, visible(actions, tenant_id))
        .order_by(own_first(actions)).limit(1)
    ).mappings().first()
    return dict(row) if row else None


def lookup(conn: Connection, tenant_id: int | None, value: Any) -> dict[str, Any]:
    """An action by id (int or digits) or ref; unknown is NotFoundError (404)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return get(conn, tenant_id, value)
    if isinstance(value, str) and value:
        row = find(conn, tenant_id, value)
        if row is not None:
            return row
        if value.isdigit() and len(value) < 19:
            return get(conn, tenant_id, int(value))
    raise NotFoundError(f"Action {value!r} not found")


def resolve(conn: Connection, tenant_id: int | None, value: Any, field: str) -> dict[str, Any]:
    """An action named in a request body (id or ref); unknown is 422 naming the field."""
    try:
        return lookup(conn, tenant_id, value)
    except NotFoundError as exc:
        raise ValidationError(f"Unknown action {value!r}", {field: "no such action"}) from exc


def list_actions(
    conn: Connection, tenant_id: int, *, pack_ref: str | None = None, limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's and system actions (optionally of one pack), newest first, with the total."""
    rows, total = page_visible(conn, actions, tenant_id, pack_ref=pack_ref, limit=limit,
                               offset=offset)
    return [to_api(r) for r in rows], total


def insert_row(
    conn: Connection, *, pack: Row, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Insert a validated action into `pack`; a taken ref is ConflictError."""
    ref = ref_of(pack["ref"], values["name"])
    try:
        with conn.begin_nested():
            row = conn.execute(
                insert(actions).values(tenant_id=pack["tenant_id"], pack_id=pack["id"], ref=ref,
                                       **values).returning(actions)
            ).mappings().one()
    except IntegrityError as exc:
        raise ConflictError(f"Action '{ref}' exists", {"ref": ref}) from exc
    return dict(row)


def update_row(
    conn: Connection, row: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    return dict(conn.execute(
        update(actions).where(actions.c.id == row["id"])
        .values(**values, updated_at=func.now()).returning(actions)
    ).mappings().one())


def differs(row: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    return any(row[key] != value for key, value in values.items())


def record(conn: Connection, row: Row, op: str, actor: Actor) -> None:
    audit.record(conn, tenant_id=row["tenant_id"], actor_type=actor.type, actor=actor.name,
                 action=f"action.{op}", entity_type="action", entity_id=row["id"],
                 details={"ref": row["ref"], "runner_type": row["runner_type"]})


def create(
    conn: Connection, *, tenant_id: int, body: Mapping[str, Any], actor: Actor,
    packs_root: Path,
) -> Outcome:
    """POST /actions: validate against the pack's folder, insert, audit."""
    spec = {k: v for k, v in body.items() if k != "pack"}
    pack = writable_pack(conn, tenant_id, body.get("pack"), "action")
    values = action_spec.normalize(spec, pack_dir=pack_dir(conn, packs_root, pack))
    row = insert_row(conn, pack=pack, values=values)
    record(conn, row, CREATED, actor)
    return Outcome(to_api(row))


def _merge(row: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The full definition after a PATCH; switching source or runner drops what no longer fits."""
    merged = {key: row[key] for key in STORED_FIELDS}
    merged.update(patch)
    if "code" in patch and "entry_point" not in patch:
        merged["entry_point"] = None
    if "entry_point" in patch and "code" not in patch:
        merged["code"] = None
    runner = merged.get("runner_type")
    for block, owner in _BLOCK_OWNERS.items():
        if block not in patch and runner != owner:
            merged[block] = None
    if runner == "workflow" and merged.get("entry_point") and "workflow" not in patch:
        merged["workflow"] = None  # re-read from the entry-point file
    return {k: v for k, v in merged.items() if v is not None}


def update_action(
    conn: Connection, *, tenant_id: int, action_id: int, patch: Mapping[str, Any], actor: Actor,
    packs_root: Path,
) -> Outcome:
    """PATCH /actions/{id}: any field but pack and name; the result is validated as a whole."""
    fixed = sorted(k for k in patch if k in ("pack", "name"))
    if fixed:
        raise ValidationError("Invalid action: pack and name cannot be changed",
                              {k: "cannot be changed" for k in fixed})
    row = get(conn, tenant_id, action_id)
    check_writable(row, tenant_id, "Action")
    pack = conn.execute(select(packs).where(packs.c.id == row["pack_id"])).mappings().one()
    values = action_spec.normalize(_merge(row, patch), pack_dir=pack_dir(conn, packs_root, pack))
    updated = update_row(conn, row, values)
    record(conn, updated, UPDATED, actor)
    return Outcome(to_api(updated))


def remove(conn: Connection, row: Mapping[str, Any], actor: Actor) -> list[Change]:
    """Delete an action and the rules that run it; returns the changes to publish."""
    result = drop_rules(conn, rules.c.action_id == row["id"], actor,
                        f"action {row['ref']} deleted")
    conn.execute(delete(actions).where(actions.c.id == row["id"]))
    record(conn, row, DELETED, actor)
    return result


def delete_action(conn: Connection, tenant_id: int, action_id: int, actor: Actor) -> Outcome:
    """DELETE /actions/{id}: rules that run it go too; a system action is 403."""
    row = get(conn, tenant_id, action_id)
    check_writable(row, tenant_id, "Action")
    return Outcome(None, remove(conn, row, actor))
