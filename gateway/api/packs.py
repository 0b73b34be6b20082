"""/api/v1/packs: register (server folder, .tar.gz upload or empty), list, get, reload, delete."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, request

from nameko_services.domain import pack_store, packs
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import ValidationError

from ..app import ctx
from ..auth import permission, principal
from ..definitions import acting_user, definition_body, publish_changes
from ..http import accepts, json_body, one, page, page_args, path_id
from .openapi import returns, uploads

bp = Blueprint("packs", __name__)

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def _packs_root() -> Path:
    """This host's pack folders, where an upload is unpacked (pack_store.cache_root)."""
    return pack_store.cache_root(ctx().settings)


def _is_upload() -> bool:
    return request.mimetype == "multipart/form-data"


# The multipart form of an upload (register or reload): the archive and `force`.
UPLOAD = {"file": {"type": "string", "format": "binary",
                   "description": "a .tar.gz of the pack folder"},
          "force": {"type": "string", "description": "true or false"}}


def _upload() -> tuple[bytes, bool]:
    """The `file` field's bytes and the `force` form field; anything else is 422."""
    unknown = (set(request.form) - {"force"}) | (set(request.files) - {"file"})
    if unknown:
        raise ValidationError("Invalid upload", {name: "unknown field" for name in unknown})
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError("Invalid upload: file: required",
                              {"file": "required: a .tar.gz of the pack folder"})
    force = request.form.get("force", "").strip().lower()
    if force not in _TRUE | _FALSE:
        raise ValidationError("Invalid upload: force: must be true or false",
                              {"force": "must be true or false"})
    return upload.read(), force in _TRUE


@bp.post("/api/v1/packs")
@permission("write")
@accepts({"path": {"type": "string",
                   "description": "a server folder in ATTUNE.packs.allowed_paths"},
          "ref": {"type": "string", "description": "an empty pack's ref (instead of path)"},
          "version": {"type": "string"}, "description": {"type": "string"},
          "force": {"type": "boolean"}})
@uploads(UPLOAD, ("file",))
@returns("Pack")
def register_pack():
    """Register a pack: an uploaded .tar.gz, an empty pack, or a server folder in
    ATTUNE.packs.allowed_paths (any other folder is the operator's `attune register-pack`)."""
    tenant_id = principal().tenant_id
    if _is_upload():
        data, force = _upload()
        with transaction(ctx().engine) as conn:
            outcome = packs.register_archive(conn, data, packs_root=_packs_root(),
                                             tenant_id=tenant_id, force=force,
                                             actor=acting_user())
    else:
        body = definition_body()
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise ValidationError("Invalid pack: force: must be true or false",
                                  {"force": "must be true or false"})
        if body.get("path") is not None:
            extra = {k: "not allowed with path" for k in ("ref", "version", "description")
                     if k in body}
            if extra:
                raise ValidationError("Invalid pack: give path or ref, not both", extra)
        elif body.get("ref") is None:
            raise ValidationError(
                "Invalid pack: path: required (or ref for an empty pack, or upload a file)",
                {"path": "required: a server folder, or ref for an empty pack"},
            )
        with transaction(ctx().engine) as conn:
            if body.get("path") is not None:
                outcome = packs.register_directory(conn, body["path"], tenant_id=tenant_id,
                                                   force=force, actor=acting_user(),
                                                   allowed=ctx().settings.packs)
            else:
                outcome = packs.create_empty(conn, tenant_id=tenant_id, ref=body["ref"],
                                             version=body.get("version"),
                                             description=body.get("description"), force=force,
                                             actor=acting_user())
    publish_changes(outcome.changes)
    return one(outcome.data, 201)


@bp.get("/api/v1/packs")
@permission("read")
@returns("Pack", many=True)
def list_packs():
    """The caller's packs plus the system packs, newest first."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = packs.list_packs(conn, principal().tenant_id, limit, offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/packs/<pack_id>")
@permission("read")
@returns("Pack")
def get_pack(pack_id: str):
    """One pack with the refs of its actions, triggers, sensors and rules."""
    with transaction(ctx().engine) as conn:
        return one(packs.get(conn, principal().tenant_id, path_id(pack_id, "Pack")))


@bp.get("/api/v1/packs/<pack_id>/environment")
@permission("read")
@returns("PackEnvironment")
def get_pack_environment(pack_id: str):
    """A pack's dependency environment (virtualenv / node_modules): `status` (building, ready,
    failed) and the last build's `log` (kept on success too, bounded), `error`, `built_at` and
    `build_seconds`."""
    with transaction(ctx().engine) as conn:
        return one(packs.environment(conn, principal().tenant_id, path_id(pack_id, "Pack")))


@bp.post("/api/v1/packs/<pack_id>/reload")
@permission("write")
@accepts({})
@uploads(UPLOAD, ("file",))
@returns("Pack")
def reload_pack(pack_id: str):
    """Re-read a pack from its folder (or an uploaded .tar.gz) and update it in place."""
    pid = path_id(pack_id, "Pack")
    archive = None
    if _is_upload():
        archive, _ = _upload()
    else:
        json_body()
    with transaction(ctx().engine) as conn:
        outcome = packs.reload(conn, principal().tenant_id, pid, archive=archive,
                               packs_root=_packs_root(), actor=acting_user(),
                               allowed=ctx().settings.packs)
    publish_changes(outcome.changes)
    return one(outcome.data)


@bp.delete("/api/v1/packs/<pack_id>")
@permission("write")
@returns(None)
def delete_pack(pack_id: str):
    """Delete a pack, its contents and the rules that use them."""
    with transaction(ctx().engine) as conn:
        outcome = packs.delete_pack(conn, principal().tenant_id, path_id(pack_id, "Pack"),
                                    acting_user())
    publish_changes(outcome.changes)
    return "", 204
