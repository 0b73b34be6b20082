"""Pack environments on this worker host: built when a pack is registered or reloaded, found
(or built lazily) when one of its actions runs, and their state recorded on the pack.

The registration transaction marks a pack with dependency files `env_status: building`; the
worker's `on_pack_changed` (and, for packs registered while no worker ran, the start-up sweep)
builds the environments and records `ready`, or `failed` with pip's (npm's) output in
`env_error`. A status is written only while the pack row is still the one that was built for,
so a slow build never overwrites the state of a newer reload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import Engine, func, or_, select, update

from runners.environments import EnvironmentBuildError, PackEnvironment, PackSource

from ..domain import messages, pack_store, sandboxing
from ..domain.db import transaction
from ..domain.models import packs
from ..domain.settings import Settings
from ..extensions import PlatformProvider
from ..green import Publisher
from . import repository

log = logging.getLogger(__name__)

READY, BUILDING, FAILED = "ready", "building", "failed"
Dispatch = Callable[[str, dict[str, Any]], None]  # (event type, payload), source WORKER


def record(engine: Engine, pack: Mapping[str, Any], status: str, error: str | None, *,
           log: str | None = None, seconds: float | None = None) -> bool:
    """Set env_status/env_error if the pack is unchanged since `pack` was read and they
    differ, and with `seconds` the build that ended: its log, end and length. A state
    recorded again leaves the row alone: `updated_at` is part of what makes the sensor
    service restart a pack's sensors."""
    built = ({"env_log": log, "env_built_at": func.now(), "env_build_seconds": seconds}
             if seconds is not None else {})
    with transaction(engine) as conn:
        done = conn.execute(
            update(packs)
            .where(packs.c.id == pack["id"], packs.c.version == pack["version"],
                   packs.c.source_path == pack["source_path"], packs.c.meta == pack["meta"],
                   packs.c.archive_sha256.is_not_distinct_from(pack["archive_sha256"]),
                   or_(packs.c.env_status.is_distinct_from(status),
                       packs.c.env_error.is_distinct_from(error)))
            .values(env_status=status, env_error=error, updated_at=func.now(), **built)
        )
    return bool(done.rowcount)


def announce(dispatch: Dispatch | None, pack: Mapping[str, Any], status: str, *,
             elapsed: float = 0.0, error: str | None = None) -> None:
    """PACK_ENVIRONMENT news for the tenant's WebSocket clients (the notifier's
    pack.env_building / env_ready / env_failed); a system pack's build has no tenant to tell,
    and a broker hiccup must not fail the build."""
    if dispatch is None or pack["tenant_id"] is None:
        return
    try:
        dispatch(messages.PACK_ENVIRONMENT, {
            "pack_id": pack["id"], "tenant_id": pack["tenant_id"], "ref": pack["ref"],
            "version": pack["version"], "status": status,
            "elapsed_seconds": elapsed, "error": error,
        })
    except Exception:
        log.exception("could not announce the environment of pack %s", pack["ref"])


def build_for_pack(engine: Engine, settings: Settings, pack_id: int, *,
                   retry_failed: bool = True, dispatch: Dispatch | None = None) -> str | None:
    """Build (or find) a pack's environments and record the outcome, announced through
    `dispatch` (building, then ready or failed); the status, or None when the pack is gone."""
    with transaction(engine) as conn:
        pack = repository.pack(conn, pack_id)
    if pack is None:
        return None
    try:
        folder = pack_store.local_folder(engine, pack_store.cache_root(settings), pack)
    except pack_store.PackContentError as exc:
        log.warning("pack %s %s: %s", pack["ref"], pack["version"], exc.message)
        record(engine, pack, FAILED, exc.message)
        return FAILED
    source = PackSource.of_pack(pack, folder)
    if source is None or not source.kinds() or not source.folder.is_dir():
        record(engine, pack, READY, None)
        return READY
    if pack["env_status"] != BUILDING:
        record(engine, pack, BUILDING, None)
    announce(dispatch, pack, BUILDING)
    began = time.monotonic()
    environments = sandboxing.pack_environments(settings)
    try:
        environments.ensure(source, retry_failed=retry_failed)
    except EnvironmentBuildError as exc:
        # One line: what failed; the installer's whole output is on the pack (env_error).
        log.warning("environment of pack %s %s failed: %s (see env_error)", pack["ref"],
                    pack["version"], exc.message.split(":", 1)[0])
        elapsed = round(time.monotonic() - began, 3)
        record(engine, pack, FAILED, exc.message, log=exc.message, seconds=elapsed)
        announce(dispatch, pack, FAILED, elapsed=elapsed, error=exc.message.split("\n", 1)[0])
        return FAILED
    elapsed = round(time.monotonic() - began, 3)
    record(engine, pack, READY, None, log=environments.build_log(source), seconds=elapsed)
    announce(dispatch, pack, READY, elapsed=elapsed)
    log.info("environment of pack %s %s ready", pack["ref"], pack["version"])
    return READY


def on_pack_changed(engine: Engine, settings: Settings, payload: Mapping[str, Any],
                    dispatch: Dispatch | None = None) -> None:
    """A pack was registered or reloaded (or deleted: nothing to build)."""
    if payload.get("op") == "deleted" or payload.get("pack_id") is None:
        return
    build_for_pack(engine, settings, int(payload["pack_id"]), dispatch=dispatch)


def resume_pending(engine: Engine, settings: Settings, dispatch: Dispatch | None = None) -> int:
    """Build the environments of packs left `building` (registered while no worker ran, or a
    worker died mid-build). Returns how many packs were looked at."""
    with transaction(engine) as conn:
        ids = conn.execute(
            select(packs.c.id).where(packs.c.env_status == BUILDING).order_by(packs.c.id)
        ).scalars().all()
    for pack_id in ids:
        try:
            build_for_pack(engine, settings, pack_id, retry_failed=False, dispatch=dispatch)
        except Exception:  # one bad pack must not stop the others
            log.exception("building the environment of pack %s failed", pack_id)
    return len(ids)


def for_run(engine: Engine, settings: Settings, pack: Mapping[str, Any] | None,
            folder: Path | None, runner_type: str) -> PackEnvironment | None:
    """The environment a run of `runner_type` needs from its pack, whose folder on this host
    is `folder` (built now if missing); None when the pack has none. EnvironmentBuildError
    names the installer's error."""
    source = PackSource.of_pack(pack, folder)
    if source is None or runner_type not in source.kinds():
        return None
    assert pack is not None
    try:
        env = sandboxing.pack_environments(settings).ensure(source, [runner_type])
    except EnvironmentBuildError as exc:
        if pack["env_status"] != FAILED:
            record(engine, pack, FAILED, exc.message)
        raise
    if pack["env_status"] == FAILED and len(source.kinds()) == 1:
        record(engine, pack, READY, None)  # a retried build succeeded
    return env


class PackEnvironmentBuilder(DependencyProvider):
    """At start-up, builds the environments of packs still marked `building`."""

    def start(self) -> None:
        provider = next(
            d for d in self.container.dependencies if isinstance(d, PlatformProvider)
        )
        self._platform = provider.platform
        self._publish = Publisher(self.container.config)
        self.container.spawn_managed_thread(self._resume, identifier="pack-environments")

    def _resume(self) -> None:
        def dispatch(event_type: str, payload: dict[str, Any]) -> None:
            self._publish(messages.WORKER, event_type, payload)

        try:
            resume_pending(self._platform.engine, self._platform.settings, dispatch)
        except Exception:  # the database may be briefly away; the next change retries
            log.exception("resuming pending pack environments failed")

    def get_dependency(self, worker_ctx: Any) -> None:
        return None
