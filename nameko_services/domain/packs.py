"""Packs: registration (from a server folder, an uploaded archive, or empty), reload, delete.

Registering over an existing pack (force, reload) upserts its actions, triggers, sensors and
rules by ref and deletes the ones the folder no longer declares, so ids (and the rules and
executions that point at them) survive a reload. Callers publish the returned changes after
the transaction commits.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import actions as actions_mod
from . import audit, messages, pack_archive, pack_loader, pack_store
from . import rule_definitions as rules_mod
from . import triggers as triggers_mod
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
    newest_first,
    visible,
)
from .db import Row, isoformat
from .errors import ConflictError, ForbiddenError, ValidationError
from .models import actions, packs, rules, sensors, triggers
from .pack_loader import Item, PackDefinition
from .settings import PackSettings
from .yaml_source import located_error

_CHILDREN = (("actions", actions), ("triggers", triggers), ("sensors", sensors), ("rules", rules))
_UPLOAD_HOW = ("upload a .tar.gz of the pack folder: POST /api/v1/packs (or /api/v1/packs/{id}/"
              "reload) as multipart/form-data with the archive in the `file` field")


def _children(conn: Connection, pack_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    result: dict[int, dict[str, list[str]]] = {
        pid: {name: [] for name, _ in _CHILDREN} for pid in pack_ids
    }
    for name, table in _CHILDREN:
        rows = conn.execute(
            select(table.c.pack_id, table.c.ref).where(table.c.pack_id.in_(pack_ids))
            .order_by(table.c.ref)
        )
        for pack_id, ref in rows:
            result[pack_id][name].append(ref)
    return result


def to_api(
    row: Row, children: Mapping[str, list[str]], tenant_id: int | None
) -> dict[str, Any]:
    """The API shape; where the pack lives on the server is shown only to its owner."""
    data = {
        "id": row["id"],
        "ref": row["ref"],
        "version": row["version"],
        "description": row["description"],
        "system": row["system"],
        "tenant_id": row["tenant_id"],
        **children,
        "env_status": row["env_status"],
        "env_error": row["env_error"],
        "meta": row["meta"],
        "archive_sha256": row["archive_sha256"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }
    if row["tenant_id"] == tenant_id:
        data["source_path"] = row["source_path"]
    return data


def get_row(conn: Connection, tenant_id: int | None, pack_id: int) -> dict[str, Any]:
    """A pack the tenant may read (its own or a system pack), else NotFoundError."""
    return get_visible(conn, packs, tenant_id, pack_id, "Pack")


def get(conn: Connection, tenant_id: int | None, pack_id: int) -> dict[str, Any]:
    """The API shape of one visible pack, with the refs of its contents."""
    row = get_row(conn, tenant_id, pack_id)
    return to_api(row, _children(conn, [row["id"]])[row["id"]], tenant_id)


def environment(conn: Connection, tenant_id: int | None, pack_id: int) -> dict[str, Any]:
    """A visible pack's environment: its status, and the last build's log (kept on success
    too), error, end and length (GET /api/v1/packs/<id>/environment)."""
    row = get_row(conn, tenant_id, pack_id)
    return {
        "pack_id": row["id"],
        "ref": row["ref"],
        "version": row["version"],
        "status": row["env_status"],
        "error": row["env_error"],
        "log": row["env_log"],
        "built_at": isoformat(row["env_built_at"]),
        "build_seconds": row["env_build_seconds"],
    }


def list_packs(
    conn: Connection, tenant_id: int, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's packs plus the system packs, newest first, with the total."""
    where = visible(packs, tenant_id)
    total = conn.execute(select(func.count()).select_from(packs).where(where)).scalar_one()
    rows = conn.execute(
        select(packs).where(where).order_by(*newest_first(packs)).limit(limit).offset(offset)
    ).mappings().all()
    children = _children(conn, [r["id"] for r in rows])
    return [to_api(r, children[r["id"]], tenant_id) for r in rows], total


def find_own(conn: Connection, tenant_id: int | None, ref: str) -> dict[str, Any] | None:
    """The pack with this ref owned by the tenant (tenant None: the system pack)."""
    owner = packs.c.tenant_id.is_(None) if tenant_id is None else packs.c.tenant_id == tenant_id
    row = conn.execute(select(packs).where(owner, packs.c.ref == ref)).mappings().first()
    return dict(row) if row else None


def _sync_triggers(conn: Connection, pack: Row, items: list[Item],
                   actor: Actor) -> tuple[list[Change], list[dict[str, Any]]]:
    existing = {r["ref"]: dict(r) for r in conn.execute(
        select(triggers).where(triggers.c.pack_id == pack["id"])).mappings()}
    changes = []
    for item in items:
        ref = f"{pack['ref']}.{item.name}"
        row = existing.pop(ref, None)
        if row is None:
            new = triggers_mod.insert_row(conn, tenant_id=pack["tenant_id"], pack_id=pack["id"],
                                          ref=ref, values=item.values)
            changes.append(triggers_mod.record(conn, new, CREATED, actor))
        elif any(row[k] != v for k, v in item.values.items()):
            new = triggers_mod.update_row(conn, row, item.values)
            changes.append(triggers_mod.record(conn, new, UPDATED, actor))
    return changes, list(existing.values())


def _sync_actions(conn: Connection, pack: Row, items: list[Item],
                  actor: Actor) -> list[dict[str, Any]]:
    existing = {r["ref"]: dict(r) for r in conn.execute(
        select(actions).where(actions.c.pack_id == pack["id"])).mappings()}
    for item in items:
        row = existing.pop(f"{pack['ref']}.{item.name}", None)
        if row is None:
            actions_mod.record(conn, actions_mod.insert_row(conn, pack=pack, values=item.values),
                               CREATED, actor)
        elif actions_mod.differs(row, item.values):
            actions_mod.record(conn, actions_mod.update_row(conn, row, item.values), UPDATED,
                               actor)
    return list(existing.values())


def _record_sensor(conn: Connection, row: Row, op: str, actor: Actor) -> None:
    audit.record(conn, tenant_id=row["tenant_id"], actor_type=actor.type, actor=actor.name,
                 action=f"sensor.{op}", entity_type="sensor", entity_id=row["id"],
                 details={"ref": row["ref"]})


def _sync_sensors(conn: Connection, pack: Row, items: list[Item],
                  actor: Actor) -> list[dict[str, Any]]:
    existing = {r["ref"]: dict(r) for r in conn.execute(
        select(sensors).where(sensors.c.pack_id == pack["id"])).mappings()}
    for item in items:
        for index, ref in enumerate(item.values["trigger_types"]):
            if triggers_mod.find(conn, pack["tenant_id"], ref) is None:
                field = f"trigger_types.{index}"
                raise located_error(item.file.name, item.file.line_of(field), field,
                                    f"no trigger '{ref}' (define it in triggers/)")
        ref = f"{pack['ref']}.{item.name}"
        row = existing.pop(ref, None)
        if row is None:
            new = conn.execute(insert(sensors).values(
                tenant_id=pack["tenant_id"], pack_id=pack["id"], ref=ref, **item.values,
            ).returning(sensors)).mappings().one()
            _record_sensor(conn, new, CREATED, actor)
        elif any(row[k] != v for k, v in item.values.items()):
            conn.execute(update(sensors).where(sensors.c.id == row["id"])
                         .values(**item.values, updated_at=func.now()))
            _record_sensor(conn, row, UPDATED, actor)
    return list(existing.values())


def _sync_rules(conn: Connection, pack: Row, items: list[Item],
                actor: Actor) -> tuple[list[Change], list[dict[str, Any]]]:
    tenant_id = pack["tenant_id"]
    if items and tenant_id is None:
        raise located_error(items[0].file.name, 1, "", "a system pack cannot hold rules "
                            "(rules belong to a tenant)")
    existing = {r["ref"]: dict(r) for r in conn.execute(
        select(rules).where(rules.c.pack_id == pack["id"])).mappings()}
    changes = []
    for item in items:
        try:
            stored = rules_mod.stored_values(conn, tenant_id, item.values)
        except ValidationError as exc:
            raise item.file.error(exc) from exc
        ref = f"{pack['ref']}.{item.name}"
        row = existing.pop(ref, None)
        if row is None:
            new = rules_mod.insert_row(conn, tenant_id=tenant_id, pack_id=pack["id"], ref=ref,
                                       values=stored)
            changes.append(rules_mod.record(conn, new, CREATED, actor))
        elif any(row[k] != v for k, v in stored.items()):
            new = rules_mod.update_row(conn, row, stored)
            changes.append(rules_mod.record(conn, new, UPDATED, actor))
    return changes, list(existing.values())


def _sync(conn: Connection, pack: Row, definition: PackDefinition,
          actor: Actor) -> list[Change]:
    """Make the pack's rows match the definition; the changes to publish."""
    changes, stale_triggers = _sync_triggers(conn, pack, definition.triggers, actor)
    stale_actions = _sync_actions(conn, pack, definition.actions, actor)
    stale_sensors = _sync_sensors(conn, pack, definition.sensors, actor)
    rule_changes, stale_rules = _sync_rules(conn, pack, definition.rules, actor)
    changes += rule_changes
    for row in stale_rules:
        changes += rules_mod.remove(conn, row, actor)
    for row in stale_sensors:
        conn.execute(delete(sensors).where(sensors.c.id == row["id"]))
        _record_sensor(conn, row, DELETED, actor)
    for row in stale_actions:
        changes += actions_mod.remove(conn, row, actor)
    for row in stale_triggers:
        changes += triggers_mod.remove(conn, row, actor)
    return changes


def _pack_changed(row: Row, op: str) -> Change:
    return Change(messages.PACK_CHANGED,
                  {"pack_id": row["id"], "tenant_id": row["tenant_id"], "op": op})


def initial_env_status(definition: PackDefinition) -> str:
    """`building` for a pack with requirements.txt or package.json (a worker builds it after
    the commit and records ready or failed), else `ready`."""
    root = definition.root
    if root is not None and any((root / f).is_file() for f in pack_loader.DEPENDENCY_FILES):
        return "building"
    return "ready"


def _apply(conn: Connection, pack: Row, definition: PackDefinition, op: str,
           actor: Actor, archive: str | None) -> Outcome:
    source = str(definition.root) if definition.root is not None else None
    row = conn.execute(
        update(packs).where(packs.c.id == pack["id"])
        .values(version=definition.version, description=definition.description,
                source_path=source, meta=definition.meta, archive_sha256=archive,
                updated_at=func.now(), env_status=initial_env_status(definition),
                env_error=None)
        .returning(packs)
    ).mappings().one()
    if pack["archive_sha256"] != archive:
        pack_store.forget(conn, pack["archive_sha256"])
    changes = _sync(conn, row, definition, actor)
    audit.record(conn, tenant_id=row["tenant_id"], actor_type=actor.type, actor=actor.name,
                 action=f"pack.{op}", entity_type="pack", entity_id=row["id"],
                 details={"ref": row["ref"], "version": row["version"], "source_path": source})
    return Outcome(get(conn, row["tenant_id"], row["id"]), [*changes, _pack_changed(row, op)])


def register(conn: Connection, definition: PackDefinition, *, tenant_id: int | None,
             force: bool, actor: Actor, archive: str | None = None) -> Outcome:
    """Register a validated pack for a tenant (None: a system pack) whose content is the stored
    `archive` (None: a pack without files); 409 if it exists, unless `force`, which brings the
    existing pack in line with the definition."""
    if tenant_id is not None and find_own(conn, None, definition.ref) is not None:
        raise ConflictError(f"Pack '{definition.ref}' is a system pack; choose another ref",
                            {"ref": definition.ref})
    existing = find_own(conn, tenant_id, definition.ref)
    if existing is not None:
        if not force:
            raise ConflictError(f"Pack '{definition.ref}' exists (register with force to "
                                "replace it)", {"ref": definition.ref, "id": existing["id"]})
        return _apply(conn, existing, definition, UPDATED, actor, archive)
    try:
        with conn.begin_nested():
            row = conn.execute(insert(packs).values(
                tenant_id=tenant_id, ref=definition.ref, version=definition.version,
                system=tenant_id is None,
            ).returning(packs)).mappings().one()
    except IntegrityError as exc:
        raise ConflictError(f"Pack '{definition.ref}' exists", {"ref": definition.ref}) from exc
    return _apply(conn, row, definition, CREATED, actor, archive)


def register_directory(conn: Connection, path: Any, *, tenant_id: int | None, force: bool,
                       actor: Actor, allowed: PackSettings | None) -> Outcome:
    """POST /packs {path}: a server folder, which must be absolute and exist. A tenant's
    request (`allowed` set) is 403 unless the folder lies in ATTUNE.packs.allowed_paths, checked
    before anything is read so a refusal tells nothing about the folder; `allowed` None is the
    operator (`attune register-pack`), who may register any folder."""
    reason = "must be an absolute path to a directory on the server"
    if not isinstance(path, str | Path) or "\x00" in str(path) or not Path(path).is_absolute():
        raise ValidationError(f"Invalid pack path: {reason}", {"path": reason})
    if allowed is not None and not allowed.allows(path):
        raise ForbiddenError(
            f"Registering a server folder is an operator action (attune register-pack PATH "
            f"--tenant ID); tenants {_UPLOAD_HOW}",
            {"path": "outside the folders tenants may register (ATTUNE.packs.allowed_paths)"},
        )
    try:
        folder = Path(path).resolve()
    except (OSError, RuntimeError) as exc:  # unreadable or a symlink loop
        raise ValidationError(f"Invalid pack path: {reason}", {"path": reason}) from exc
    definition, archive = _from_folder(conn, folder, tenant_id)
    return register(conn, definition, tenant_id=tenant_id, force=force, actor=actor,
                    archive=archive)


def _from_folder(conn: Connection, folder: Path, tenant_id: int | None
                 ) -> tuple[PackDefinition, str]:
    """A server folder's definition and its stored canonical archive (what every host will
    run), checked to unpack as an upload would (no link leaving the pack, the size caps)."""
    definition = pack_loader.load_pack(folder)
    data = pack_archive.archive(folder)
    with tempfile.TemporaryDirectory(prefix="attune-pack-") as scratch:
        pack_archive.extract(data, Path(scratch), pack_store.owner_key(tenant_id))
    return definition, pack_store.store(conn, data)


def register_from_path(conn: Connection, path: Path, *, tenant_id: int | None, system: bool,
                       force: bool, actor_type: str, actor: str) -> dict[str, Any]:
    """Register a pack folder (the CLI installs packs/core with tenant_id=None, system=True).

    Idempotent with force=True. Returns the pack's API shape; the caller publishes nothing.
    """
    if system != (tenant_id is None):
        raise ValueError("a system pack has tenant_id None, and only a system pack has")
    return register_directory(conn, Path(path).resolve(), tenant_id=tenant_id, force=force,
                              actor=Actor(actor_type, actor), allowed=None).data


def register_archive(conn: Connection, data: bytes, *, packs_root: Path,
                     tenant_id: int | None, force: bool, actor: Actor) -> Outcome:
    """POST /packs (multipart): unpack the .tar.gz safely under packs_root (this host's
    cache), store it, then register."""
    definition = pack_archive.extract(data, packs_root.resolve(), pack_store.owner_key(tenant_id))
    return register(conn, definition, tenant_id=tenant_id, force=force, actor=actor,
                    archive=pack_store.store(conn, data))


def create_empty(conn: Connection, *, tenant_id: int | None, ref: Any, version: Any,
                 description: Any, force: bool, actor: Actor) -> Outcome:
    """POST /packs {ref, version, description}: a pack without a folder, for API actions."""
    definition = pack_loader.empty(ref, "0.1.0" if version is None else version, description)
    return register(conn, definition, tenant_id=tenant_id, force=force, actor=actor)


def reload(conn: Connection, tenant_id: int | None, pack_id: int, *, archive: bytes | None,
           packs_root: Path, actor: Actor, allowed: PackSettings | None) -> Outcome:
    """Re-read a pack from its folder (or a new upload, or the stored archive of an upload) and
    update its contents in place. A tenant (`allowed` set) re-reads only its own uploads and
    folders in the allow-list."""
    row = get_row(conn, tenant_id, pack_id)
    check_writable(row, tenant_id, "Pack")
    owner = pack_store.owner_key(row["tenant_id"])
    uploaded = row["source_path"] is not None and Path(row["source_path"]).is_relative_to(
        packs_root.resolve())
    if archive is None and uploaded and row["archive_sha256"] is not None:
        archive = pack_store.content(conn, row["archive_sha256"])  # any gateway host has it
    if archive is not None:
        definition = pack_archive.extract(archive, packs_root.resolve(), owner)
        stored = pack_store.store(conn, archive)
    elif row["source_path"] is None:
        raise ConflictError(f"Pack '{row['ref']}' has no folder on the server; upload a .tar.gz"
                            " to reload it", {"id": pack_id})
    elif allowed is not None and not allowed.allows(row["source_path"], packs_root / owner):
        raise ForbiddenError(
            f"Pack '{row['ref']}' was registered from a server folder tenants may not read: an "
            f"operator reloads it with attune register-pack PATH --tenant ID, or {_UPLOAD_HOW}",
            {"id": pack_id},
        )
    elif not Path(row["source_path"]).is_dir():
        raise ConflictError(f"Pack folder {row['source_path']} no longer exists",
                            {"id": pack_id})
    else:
        definition, stored = _from_folder(conn, Path(row["source_path"]), row["tenant_id"])
    if definition.ref != row["ref"]:
        raise ValidationError(
            f"The pack folder declares ref '{definition.ref}', not '{row['ref']}'",
            {"ref": f"must be '{row['ref']}'"}, file="pack.yaml",
        )
    return _apply(conn, row, definition, UPDATED, actor, stored)


def delete_pack(conn: Connection, tenant_id: int | None, pack_id: int, actor: Actor) -> Outcome:
    """Delete a pack and everything in it, plus any rule that uses its actions or triggers."""
    row = get_row(conn, tenant_id, pack_id)
    check_writable(row, tenant_id, "Pack")
    pack_actions = select(actions.c.id).where(actions.c.pack_id == pack_id)
    pack_triggers = select(triggers.c.id).where(triggers.c.pack_id == pack_id)
    changes = drop_rules(conn, or_(rules.c.pack_id == pack_id,
                                   rules.c.action_id.in_(pack_actions),
                                   rules.c.trigger_id.in_(pack_triggers)),
                         actor, f"pack {row['ref']} deleted")
    for trigger in conn.execute(select(triggers).where(triggers.c.pack_id == pack_id)).mappings():
        changes.append(triggers_mod.record(conn, trigger, DELETED, actor))
    for action in conn.execute(select(actions).where(actions.c.pack_id == pack_id)).mappings():
        actions_mod.record(conn, action, DELETED, actor)
    conn.execute(delete(packs).where(packs.c.id == pack_id))  # cascades to its contents
    pack_store.forget(conn, row["archive_sha256"])
    audit.record(conn, tenant_id=row["tenant_id"], actor_type=actor.type, actor=actor.name,
                 action="pack.deleted", entity_type="pack", entity_id=pack_id,
                 details={"ref": row["ref"], "version": row["version"]})
    return Outcome(None, [*changes, _pack_changed(row, DELETED)])
