"""Pack helpers for tests: fixture folders, archives of them and API shortcuts."""

from __future__ import annotations

import io
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "packs"
TEST_PACK = FIXTURES / "test_pack"
BROKEN = FIXTURES / "broken"


def copy_pack(source: Path, into: Path, ref: str | None = None) -> Path:
    """A writable copy of a fixture pack (optionally under another ref)."""
    target = into / (ref or source.name)
    shutil.copytree(source, target)
    if ref:
        manifest = target / "pack.yaml"
        old = source.name
        manifest.write_text(manifest.read_text().replace(f"ref: {old}", f"ref: {ref}"))
        for path in target.rglob("*.yaml"):
            path.write_text(path.read_text().replace(f"{old}.", f"{ref}."))
    return target


def tar_gz(folder: Path, *, top: str | None = "pack") -> bytes:
    """A .tar.gz of `folder`, its files under `top/` (or at the archive's top when None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=top or ".")
    return buffer.getvalue()


def evil_tar_gz(name: str, *, link_to: str | None = None) -> bytes:
    """An archive with one hostile entry: a path like '../x' or a symlink pointing outside."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        manifest = b"ref: evil\nversion: 1.0.0\n"
        info = tarfile.TarInfo("pack.yaml")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        entry = tarfile.TarInfo(name)
        if link_to is not None:
            entry.type, entry.linkname = tarfile.SYMTYPE, link_to
            tar.addfile(entry)
        else:
            entry.size = 2
            tar.addfile(entry, io.BytesIO(b"hi"))
    return buffer.getvalue()


def upload(client: Any, headers: dict[str, str], data: bytes, url: str = "/api/v1/packs",
           **form: Any) -> Any:
    """POST a .tar.gz as multipart/form-data (`file`), as a tenant uploads a pack."""
    return client.post(url, headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), "pack.tar.gz"), **form})


def unique_ref(prefix: str = "p") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def create_pack(client: Any, headers: dict[str, str], ref: str | None = None) -> dict[str, Any]:
    """An empty (API-only) pack of the caller's tenant."""
    r = client.post("/api/v1/packs", headers=headers,
                    json={"ref": ref or unique_ref(), "version": "1.0.0"})
    assert r.status_code == 201, r.json
    return r.json["data"]


def create_action(client: Any, headers: dict[str, str], pack: str, **fields: Any) -> dict:
    body = {"pack": pack, "name": unique_ref("a"), "runner_type": "shell",
            "code": "echo hi", **fields}
    r = client.post("/api/v1/actions", headers=headers, json=body)
    assert r.status_code == 201, r.json
    return r.json["data"]


def create_trigger(client: Any, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": unique_ref("t"), "type": "webhook", **fields}
    r = client.post("/api/v1/triggers", headers=headers, json=body)
    assert r.status_code == 201, r.json
    return r.json["data"]


def register_system_pack(engine: Any, tmp_path: Path) -> dict[str, Any]:
    """A copy of test_pack installed as a system pack (tenant_id NULL), as the CLI does."""
    from nameko_services.domain import packs

    folder = copy_pack(TEST_PACK, tmp_path, unique_ref("sys"))
    for rule in (folder / "rules").iterdir():  # rules belong to tenants, never to system packs
        rule.unlink()
    with engine.begin() as conn:
        return packs.register_from_path(conn, folder, tenant_id=None, system=True, force=True,
                                        actor_type="service", actor="test")


def delete_system_pack(engine: Any, pack_id: int) -> None:
    from nameko_services.domain import packs
    from nameko_services.domain.catalog import Actor

    with engine.begin() as conn:
        packs.delete_pack(conn, None, pack_id, Actor("service", "test"))
