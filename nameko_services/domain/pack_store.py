"""Pack content in PostgreSQL, and each host's cache of it (hosts share no disk).

Every pack with files has its .tar.gz in `pack_archives`, named by its sha256 and pointed at by
`packs.archive_sha256`: the uploaded archive as it came, or the canonical archive of a server
folder (`pack_archive.archive`) made when the folder is registered. A host that runs a pack's
code (worker, sensor service) gets the pack's folder from `local_folder`, and from nowhere
else: on first use it fetches the archive, checks its sha256 and unpacks it with
`pack_archive.extract` (a scratch folder renamed into place, so two processes fetching one
version at once both end up with one complete folder) under its own run dir:

    <run_dir>/packs/<tenant id | system>/<ref>/<version>-<sha256>/

Later uses find it there (the gateway's own extraction of an upload is the same folder on its
host). `prune` removes the folders no pack points at any more (older versions, deleted packs)
once none has used them for longer than any run may last.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from . import pack_archive
from .db import Row
from .errors import ValidationError
from .models import pack_archives, packs
from .settings import Settings

log = logging.getLogger(__name__)

CACHE_FOLDER = "packs"
UNUSED_MARGIN_SECONDS = 60.0


class PackContentError(Exception):
    """A pack's content cannot be had on this host: gone from the database, or damaged."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def owner_key(tenant_id: int | None) -> str:
    """The folder name of a tenant's packs ("system" for system packs)."""
    return "system" if tenant_id is None else str(tenant_id)


def cache_root(settings: Settings) -> Path:
    """This host's pack folders: `<run_dir>/packs`."""
    return settings.run_dir.resolve() / CACHE_FOLDER


def unused_grace(settings: Settings) -> float:
    """How long an unreferenced folder is kept after its last use: the longest a run that
    started on it may still be running (its timeout, then the grace before SIGKILL)."""
    return (settings.sandbox.max_timeout_seconds + settings.worker.cancel_grace_seconds
            + UNUSED_MARGIN_SECONDS)


# -- the database ---------------------------------------------------------------------------

def store(conn: Connection, data: bytes) -> str:
    """Keep an archive (once per content); its sha256. The upsert locks the row, so `forget`
    in a concurrent transaction cannot remove it before this one points a pack at it."""
    digest = hashlib.sha256(data).hexdigest()
    stmt = insert(pack_archives).values(sha256=digest, content=data, size=len(data))
    conn.execute(stmt.on_conflict_do_update(index_elements=[pack_archives.c.sha256],
                                            set_={"sha256": stmt.excluded.sha256}))
    return digest


def forget(conn: Connection, digest: str | None) -> None:
    """Remove an archive no pack points at any more (a pack registered meanwhile with the same
    content keeps it: the foreign key refuses, and that refusal is ignored)."""
    if digest is None:
        return
    unused = ~exists(select(packs.c.id).where(packs.c.archive_sha256 == digest))
    try:
        with conn.begin_nested():
            conn.execute(delete(pack_archives).where(pack_archives.c.sha256 == digest, unused))
    except IntegrityError:
        log.info("archive %s is used again; kept", digest)


def content(conn: Connection, digest: str) -> bytes | None:
    """The stored archive, or None."""
    data = conn.execute(select(pack_archives.c.content)
                        .where(pack_archives.c.sha256 == digest)).scalar_one_or_none()
    return bytes(data) if data is not None else None


@contextlib.contextmanager
def _connected(db: Connection | Engine) -> Iterator[Connection]:
    if isinstance(db, Connection):
        yield db
    else:
        with db.connect() as conn:
            yield conn


# -- this host's folders -----------------------------------------------------------------------

def cached_path(root: Path, pack: Row) -> Path:
    """Where the pack's archive is (or will be) unpacked under `root`."""
    return (root / owner_key(pack["tenant_id"]) / pack["ref"]
            / pack_archive.folder_name(pack["version"], pack["archive_sha256"]))


def local_folder(db: Connection | Engine, root: Path, pack: Row | None) -> Path | None:
    """The folder of a pack row on this host (None for a pack without files): its archive's
    folder under `root`, fetched and unpacked now if this host lacks it. A pack registered
    before archives existed (no `archive_sha256`) runs from its `source_path`.
    PackContentError when the archive is gone or does not match its sha256."""
    if not pack:
        return None
    digest = pack.get("archive_sha256")
    if not digest:
        source = pack.get("source_path")
        return Path(source) if source else None
    folder = cached_path(root, pack)
    if folder.is_dir():
        with contextlib.suppress(OSError):
            os.utime(folder)  # "last used", for prune
        return folder
    what = f"pack {pack['ref']} {pack['version']}"
    with _connected(db) as conn:
        data = content(conn, digest)
    if data is None:
        raise PackContentError(f"The content of {what} is no longer stored (the pack was "
                               f"reloaded or deleted meanwhile)")
    if hashlib.sha256(data).hexdigest() != digest:
        raise PackContentError(f"The stored content of {what} does not match its sha256 "
                               f"{digest}: refused")
    try:
        unpacked = pack_archive.extract(data, root, owner_key(pack["tenant_id"]))
    except ValidationError as exc:
        raise PackContentError(f"The stored content of {what} cannot be unpacked: "
                               f"{exc.message}") from exc
    if unpacked.root != folder:
        raise PackContentError(f"The stored content of {what} declares another ref or "
                               f"version ({unpacked.ref} {unpacked.version})")
    log.info("fetched %s (%d bytes) into %s", what, len(data), folder)
    return folder


def prune(db: Connection | Engine, root: Path, *, unused_s: float) -> list[Path]:
    """Remove the folders under `root` that no pack points at (an older version, a deleted
    pack) and nobody used for `unused_s`, and scratch folders of extractions that died.
    Returns what was removed."""
    if not root.is_dir():
        return []
    with _connected(db) as conn:
        rows = conn.execute(select(packs.c.tenant_id, packs.c.ref, packs.c.version,
                                   packs.c.archive_sha256, packs.c.source_path)).mappings().all()
    kept = {Path(row["source_path"]) for row in rows if row["source_path"]}
    kept |= {cached_path(root, dict(row)) for row in rows if row["archive_sha256"]}
    now = time.time()
    removed = []
    versions = (folder for owner in root.iterdir() if not owner.name.startswith(".")
                for folder in owner.glob("*/*"))
    for folder in sorted(versions):
        if folder in kept or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            idle = now - folder.stat().st_mtime
        except OSError:
            continue
        if idle >= unused_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for scratch in root.glob(".incoming/*"):
        with contextlib.suppress(OSError):
            if now - scratch.stat().st_mtime >= unused_s:
                shutil.rmtree(scratch, ignore_errors=True)
    if removed:
        log.info("pruned %d unused pack folder(s) under %s", len(removed), root)
    return removed
