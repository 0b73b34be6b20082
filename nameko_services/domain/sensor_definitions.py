"""Sensor definitions from pack yaml: validation, the tenant-scoped read side and API shape.

Sensors are defined only by packs; the sensor service updates status, last_error and restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from . import triggers as triggers_mod
from .action_spec import check_entry_point, check_positive
from .catalog import (
    Problems,
    check_name,
    check_unknown,
    get_visible,
    optional_bool,
    pack_ref_of,
    page_visible,
)
from .db import isoformat
from .errors import ValidationError
from .models import sensors

SENSOR_FIELDS = frozenset({
    "name", "description", "entry_point", "poll_interval", "trigger_types", "config", "enabled",
})


def _trigger_types(
    problems: Problems, value: Any, pack_ref: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Refs of the sensor's triggers; a mapping entry declares a custom trigger of the pack."""
    if not isinstance(value, list) or not value:
        problems.add("trigger_types", "required: a non-empty list of trigger refs")
        return [], []
    refs: list[str] = []
    declared: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        where = f"trigger_types.{index}"
        if isinstance(entry, str) and entry:
            refs.append(entry if "." in entry else f"{pack_ref}.{entry}")
        elif isinstance(entry, Mapping):
            try:
                spec = triggers_mod.normalize({"type": "custom", **entry})
            except ValidationError as exc:
                for key, reason in exc.fields.items():
                    problems.add(f"{where}.{key}", reason)
                continue
            declared.append(spec)
            refs.append(f"{pack_ref}.{spec['name']}")
        else:
            problems.add(where, "must be a trigger ref or a trigger definition")
    return list(dict.fromkeys(refs)), declared


def normalize(
    spec: Mapping[str, Any], *, pack_dir: Path, pack_ref: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate a sensor yaml; returns its column values and any triggers it declares inline."""
    problems = Problems("sensor")
    check_unknown(problems, spec, SENSOR_FIELDS)
    name = check_name(problems, spec.get("name"))
    entry_point = None
    if spec.get("entry_point") is None:
        problems.add("entry_point", "required: the sensor's python file")
    else:
        entry_point = check_entry_point(problems, spec["entry_point"], pack_dir, "entry_point",
                                        "sensors")
    check_positive(problems, spec.get("poll_interval"), "poll_interval")
    refs, declared = _trigger_types(problems, spec.get("trigger_types"), pack_ref)
    config = spec.get("config")
    if config is not None and not isinstance(config, Mapping):
        problems.add("config", "must be a mapping")
    enabled = optional_bool(problems, spec, "enabled", True)
    problems.raise_if_any()
    poll = spec.get("poll_interval")
    return {
        "name": name,
        "entry_point": entry_point,
        "poll_interval": float(poll) if poll is not None else None,
        "trigger_types": refs,
        "config": dict(config or {}),
        "enabled": enabled,
    }, declared


def to_api(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API shape, with the health the sensor service reports (status, last_error)."""
    return {
        "id": row["id"],
        "ref": row["ref"],
        "pack": pack_ref_of(row["ref"]),
        "pack_id": row["pack_id"],
        "name": row["name"],
        "entry_point": row["entry_point"],
        "poll_interval": row["poll_interval"],
        "trigger_types": row["trigger_types"],
        "config": row["config"],
        "enabled": row["enabled"],
        "status": row["status"],
        "last_error": row["last_error"],
        "restarts": row["restarts"],
        "tenant_id": row["tenant_id"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def get(conn: Connection, tenant_id: int | None, sensor_id: int) -> dict[str, Any]:
    """One sensor the tenant may read (its own or a system one), else NotFoundError."""
    return get_visible(conn, sensors, tenant_id, sensor_id, "Sensor")


def list_sensors(
    conn: Connection, tenant_id: int, *, pack_ref: str | None = None, limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's and system sensors, newest first, with the total."""
    rows, total = page_visible(conn, sensors, tenant_id, pack_ref=pack_ref, limit=limit,
                               offset=offset)
    return [to_api(r) for r in rows], total
