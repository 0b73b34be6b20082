"""Custom pack sensors (packs.md "Sensors"): which run, and storing what they emit.

Each enabled sensor of a pack runs in its own child process (runners/wrappers/sensor_wrapper.py,
supervised by `supervisor.py`). An emitted payload becomes one event (source "sensor") per trigger
type of the sensor, stored in one transaction and announced after commit, exactly like a timer's.
Only the process holding the sensor's PostgreSQL advisory lock runs it, so several sensor
processes never run one sensor twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select, update

from runners.environments import PackSource

from .. import metrics
from ..domain import events, messages, pack_store
from ..domain.db import isoformat, transaction
from ..domain.models import packs, sensors, triggers
from . import timers

log = logging.getLogger(__name__)

RUNNING = "running"
RESTARTING = "restarting"
STOPPED = "stopped"
DEFAULT_POLL_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """What the child process needs; `fingerprint` changes when the sensor must restart."""

    sensor_id: int
    ref: str
    tenant_id: int | None
    pack_dir: str
    entry_point: str
    poll_interval: float
    trigger_types: tuple[str, ...]
    config: dict[str, Any] = field(compare=False)
    fingerprint: str = ""
    source: PackSource | None = None  # names the pack's environments (requirements.txt)
    pack: dict[str, Any] = field(default_factory=dict, compare=False)  # tenant_id, meta

    def wrapper_input(self) -> dict[str, Any]:
        """The stdin document of sensor_wrapper.py."""
        return {"ref": self.ref, "entry_point": self.entry_point, "pack_dir": self.pack_dir,
                "config": self.config, "poll_interval": self.poll_interval}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _spec(conn: Connection, root: Path, row: Mapping[str, Any]) -> SensorSpec | None:
    pack = {"tenant_id": row["pack_tenant_id"], "ref": row["pack_ref"],
            "version": row["pack_version"], "meta": row["pack_meta"],
            "source_path": row["source_path"], "archive_sha256": row["archive_sha256"]}
    try:
        pack_dir = pack_store.local_folder(conn, root, pack)
    except pack_store.PackContentError as exc:
        log.warning("sensor %s: %s; not run", row["ref"], exc.message)
        return None
    if pack_dir is None:
        log.warning("sensor %s: its pack has no folder, not run", row["ref"])
        return None
    entry = (pack_dir / row["entry_point"]).resolve()
    poll = float(row["poll_interval"] or DEFAULT_POLL_INTERVAL)
    trigger_types = tuple(row["trigger_types"] or ())
    fingerprint = json.dumps(
        [str(entry), _mtime(entry), row["config"], poll, trigger_types,
         isoformat(row["pack_updated_at"])], sort_keys=True, default=str)
    source = PackSource.of_pack(pack, pack_dir)
    return SensorSpec(sensor_id=row["id"], ref=row["ref"], tenant_id=row["tenant_id"],
                      pack_dir=str(pack_dir), entry_point=str(entry), poll_interval=poll,
                      trigger_types=trigger_types, config=dict(row["config"] or {}),
                      fingerprint=fingerprint, source=source,
                      pack={"tenant_id": row["pack_tenant_id"], "meta": row["pack_meta"] or {}})


def load_all(conn: Connection, root: Path) -> list[SensorSpec]:
    """Every enabled pack sensor, across tenants, its pack's folder under `root` (this host's
    pack cache, pack_store)."""
    rows = conn.execute(
        select(sensors, packs.c.source_path, packs.c.archive_sha256,
               packs.c.updated_at.label("pack_updated_at"),
               packs.c.tenant_id.label("pack_tenant_id"), packs.c.ref.label("pack_ref"),
               packs.c.version.label("pack_version"), packs.c.meta.label("pack_meta"))
        .join(packs, packs.c.id == sensors.c.pack_id)
        .where(sensors.c.enabled.is_(True))
        .order_by(sensors.c.id)
    ).mappings().all()
    specs = (_spec(conn, root, row) for row in rows)
    return [spec for spec in specs if spec is not None]


def record_state(engine: Engine, sensor_id: int, status: str, *, error: str | None = None,
                 restarted: bool = False, clear_error: bool = False) -> None:
    """Store the sensor's health for GET /api/v1/sensors (status, last_error, restarts)."""
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if error is not None:
        values["last_error"] = error[-4000:]
    elif clear_error:
        values["last_error"] = None
    if restarted:
        values["restarts"] = sensors.c.restarts + 1
    with transaction(engine) as conn:
        conn.execute(update(sensors).where(sensors.c.id == sensor_id).values(**values))


def _trigger(conn: Connection, ref: str, tenant_id: int | None) -> dict[str, Any] | None:
    """The sensor's trigger by ref: the tenant's own, else a system one."""
    row = conn.execute(
        select(triggers)
        .where(triggers.c.ref == ref,
               or_(triggers.c.tenant_id.is_(None), triggers.c.tenant_id == tenant_id),
               triggers.c.status == timers.ACTIVE)
        .order_by(triggers.c.tenant_id.is_(None))
        .limit(1)
    ).mappings().one_or_none()
    return dict(row) if row is not None else None


def store_emitted(engine: Engine, spec: SensorSpec, payload: Any) -> list[dict[str, Any]]:
    """One event per trigger type (per tenant for system sensors), in one transaction."""
    created: list[dict[str, Any]] = []
    with transaction(engine) as conn:
        for ref in spec.trigger_types:
            trigger = _trigger(conn, ref, spec.tenant_id)
            if trigger is None:
                log.warning("sensor %s emitted for unknown trigger %s; dropped", spec.ref, ref)
                continue
            tenants = ([spec.tenant_id] if spec.tenant_id is not None
                       else timers._event_tenants(conn, trigger))
            for tenant_id in tenants:
                row, _ = events.create(conn, trigger=trigger, source="sensor", payload=payload,
                                       tenant_id=tenant_id)
                created.append(row)
    return created


def emit_and_announce(engine: Engine, publish: Callable[[str, str, dict[str, Any]], None],
                      spec: SensorSpec, payload: Any) -> list[dict[str, Any]]:
    """Store, then publish EVENT_CREATED (source "sensor") for each event after commit."""
    created = store_emitted(engine, spec, payload)
    for event in created:
        metrics.EVENTS.labels(event["source"]).inc()
        publish(messages.SENSOR, messages.EVENT_CREATED, events.announcement(event))
    return created
