"""Pack archives: the canonical .tar.gz of a pack folder, and the safe extraction of an archive
into an immutable, content-addressed folder.

`<packs root>/<tenant id | system>/<ref>/<version>-<sha256>/`: a new version never touches
the folder running executions use, so they finish with the code they started with. The same
layout is each host's cache of the archives stored in PostgreSQL (pack_store.py).
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from . import pack_loader
from .errors import ValidationError
from .pack_loader import PackDefinition

MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
_IGNORED_TOP = ("__MACOSX",)
# Left out when a server folder is archived: version control, byte-code caches.
_NOT_ARCHIVED = (".git", "__pycache__")


def folder_name(version: str, digest: str) -> str:
    """The name of a pack version's folder under `<packs root>/<owner>/<ref>/`."""
    return f"{version}-{digest}"


def archive(folder: Path) -> bytes:
    """The canonical .tar.gz of a pack folder: entries sorted, no owners, times or gzip
    timestamp, modes reduced to 644/755, so the same files always make the same bytes (and
    sha256). Left out: `.git`, `__pycache__`, sockets, and a top-level `node_modules` that is
    a link (the one a worker made to the pack's environment before packs had archives)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        total = 0
        for path in _archived(folder):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(folder).as_posix())
            if info is None:  # a socket
                continue
            total += info.size
            if total > MAX_UNPACKED_BYTES:
                raise _bad(f"the folder holds more than {MAX_UNPACKED_BYTES // (1024 * 1024)}"
                           f" MiB")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.pax_headers = {}
            executable = info.isdir() or bool(info.mode & 0o111)
            info.mode = 0o755 if executable else 0o644
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _archived(folder: Path, *, top: bool = True) -> list[Path]:
    """The paths `archive` stores below `folder`, sorted, parents before their contents."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        skipped = entry.name in _NOT_ARCHIVED or (
            top and entry.name == "node_modules" and entry.is_symlink())
        if skipped:
            continue
        if entry.is_symlink() or entry.is_file():
            found.append(entry)
        elif entry.is_dir():
            found += [entry, *_archived(entry, top=False)]
    return found


def _bad(reason: str) -> ValidationError:
    return ValidationError(f"Invalid pack archive: {reason}", {"file": reason})


def _check_member(member: tarfile.TarInfo) -> None:
    """No absolute paths, no '..', no links leaving the archive, no devices or fifos."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise _bad(f"entry '{member.name}' points outside the pack")
    if member.isdev() or member.isfifo():
        raise _bad(f"entry '{member.name}' is a device or fifo")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = name.parent if member.issym() else PurePosixPath()
        parts: list[str] = []
        for part in (base / target).parts:
            if part == "..":
                if not parts:
                    raise _bad(f"link '{member.name}' points outside the pack")
                parts.pop()
            elif part not in (".", ""):
                parts.append(part)
        if target.is_absolute():
            raise _bad(f"link '{member.name}' points outside the pack")


# tarfile's "data" filter exists from Python 3.11.4; Debian 12's python3.11 is 3.11.2, so the
# members are also made plain data here (`_as_data`), whichever interpreter extracts them.
_DATA_FILTER: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _as_data(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A copy owned by whoever extracts, readable by all (the sandbox's user reads it), without
    set-id, sticky or group/other write bits."""
    plain = copy.copy(member)
    plain.uid, plain.gid, plain.uname, plain.gname = os.getuid(), os.getgid(), "", ""
    plain.mode = (member.mode & 0o755) | (0o755 if member.isdir() else 0o644)
    return plain


def _unpack(data: bytes, into: Path) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in tar:  # headers one by one: a bomb stops at the cap, not at the end
                total += max(member.size, 0)
                if len(members) >= MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
                    raise _bad(f"more than {MAX_MEMBERS} entries or "
                               f"{MAX_UNPACKED_BYTES // (1024 * 1024)} MiB unpacked")
                _check_member(member)
                members.append(_as_data(member))
            tar.extractall(into, members=members, **_DATA_FILTER)  # noqa: S202 - checked above
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _bad(f"not a readable .tar.gz archive ({exc})") from exc


def _pack_root(folder: Path) -> Path:
    """The archive's top, or its single top folder, whichever holds pack.yaml."""
    if (folder / "pack.yaml").is_file() or (folder / "pack.yml").is_file():
        return folder
    entries = [p for p in folder.iterdir()
               if not p.name.startswith(".") and p.name not in _IGNORED_TOP]
    if len(entries) == 1 and entries[0].is_dir() and (
        (entries[0] / "pack.yaml").is_file() or (entries[0] / "pack.yml").is_file()
    ):
        return entries[0]
    raise _bad("no pack.yaml at the top of the archive or in its single top folder")


def extract(data: bytes, packs_root: Path, owner: str) -> PackDefinition:
    """Validate and unpack an archive; returns the pack definition rooted at its final folder.

    `owner` is the tenant id or "system". A pack that fails validation leaves nothing behind.
    """
    if not data:
        raise _bad("empty upload")
    digest = hashlib.sha256(data).hexdigest()
    incoming = packs_root / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{digest[:12]}-", dir=incoming))
    try:
        _unpack(data, scratch)
        definition = pack_loader.load_pack(_pack_root(scratch))
        assert definition.root is not None
        final = packs_root / owner / definition.ref / folder_name(definition.version, digest)
        if not final.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
            definition.root.chmod(0o755)  # mkdtemp's 700 when pack.yaml is at the top
            try:
                definition.root.rename(final)
            except OSError:
                if not final.is_dir():  # not a concurrent upload of the same archive
                    raise
        os.utime(final)  # its last use (the archive's own times may be old): prune keeps it
        return dataclasses.replace(definition, root=final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
