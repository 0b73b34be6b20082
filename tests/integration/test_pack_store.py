"""Pack content in PostgreSQL and a host's cache of it (domain/pack_store.py), on a real
database: registration stores the archive, a host without it fetches and checks it, a cache
hit needs no database, concurrent fetches make one folder, and prune keeps what is used."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.exc import OperationalError

from nameko_services.domain import pack_archive, pack_loader, pack_store, packs
from nameko_services.domain.catalog import Actor
from nameko_services.domain.db import transaction
from nameko_services.domain.models import pack_archives
from nameko_services.domain.models import packs as packs_table
from tests.integration import rows
from tests.support.packs import TEST_PACK, copy_pack, tar_gz

pytestmark = pytest.mark.integration
OPERATOR = Actor("service", "test")


@pytest.fixture
def folder(tmp_path):
    return copy_pack(TEST_PACK, tmp_path / "source", rows.unique("store"))


def register(engine, folder: Path, tenant: int) -> dict:
    with transaction(engine) as conn:
        packs.register_from_path(conn, folder, tenant_id=tenant, system=False, force=True,
                                 actor_type="service", actor="test")
        return pack_row(conn, tenant, folder)


def pack_row(conn, tenant: int, folder: Path) -> dict:
    ref = pack_loader.load_pack(folder).ref
    return dict(conn.execute(select(packs_table).where(packs_table.c.tenant_id == tenant,
                                                       packs_table.c.ref == ref)
                             ).mappings().one())


def stored(engine, digest: str) -> bytes | None:
    with transaction(engine) as conn:
        return pack_store.content(conn, digest)


def test_a_registered_folder_is_stored_and_a_host_without_it_fetches_it(engine, tenant,
                                                                         folder, tmp_path):
    pack = register(engine, folder, tenant)
    data = stored(engine, pack["archive_sha256"])
    assert data is not None and hashlib.sha256(data).hexdigest() == pack["archive_sha256"]
    assert data == pack_archive.archive(folder)  # the canonical archive of the folder

    host = tmp_path / "second-host" / "packs"
    local = pack_store.local_folder(engine, host, pack)
    assert local == host / str(tenant) / pack["ref"] / f"1.0.0-{pack['archive_sha256']}"
    assert (local / "actions" / "echo.py").read_bytes() == (
        folder / "actions" / "echo.py").read_bytes()
    assert list((host / ".incoming").iterdir()) == []


def test_a_cache_hit_reads_nothing_from_the_database(engine, tenant, folder, tmp_path):
    pack = register(engine, folder, tenant)
    host = tmp_path / "packs"
    first = pack_store.local_folder(engine, host, pack)
    nowhere = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    assert pack_store.local_folder(nowhere, host, pack) == first
    (host / str(tenant)).rename(tmp_path / "moved")  # the cache is gone: now it must fetch
    with pytest.raises(OperationalError, match="connect"):
        pack_store.local_folder(nowhere, host, pack)


def test_content_that_does_not_match_its_sha256_is_refused(engine, tenant, folder, tmp_path):
    pack = register(engine, folder, tenant)
    other = copy_pack(TEST_PACK, tmp_path / "other", pack["ref"])
    (other / "actions" / "echo.py").write_text("print('not what was registered')\n")
    with transaction(engine) as conn:
        conn.execute(update(pack_archives)
                     .where(pack_archives.c.sha256 == pack["archive_sha256"])
                     .values(content=pack_archive.archive(other)))
    host = tmp_path / "packs"
    with pytest.raises(pack_store.PackContentError, match="does not match its sha256"):
        pack_store.local_folder(engine, host, pack)
    assert not (host / str(tenant)).exists()


def test_a_missing_archive_is_a_clear_error(engine, tenant, folder, tmp_path):
    pack = register(engine, folder, tenant)
    ghost = {**pack, "archive_sha256": "0" * 64}
    with pytest.raises(pack_store.PackContentError, match="no longer stored"):
        pack_store.local_folder(engine, tmp_path / "packs", ghost)


def test_concurrent_fetches_of_one_version_make_one_complete_folder(engine, tenant, folder,
                                                                    tmp_path):
    pack = register(engine, folder, tenant)
    host = tmp_path / "packs"
    barrier = threading.Barrier(8)
    found: list[Path] = []
    failed: list[BaseException] = []

    def fetch() -> None:
        barrier.wait()
        try:
            found.append(pack_store.local_folder(engine, host, pack))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == [] and len(found) == 8 and len(set(found)) == 1
    versions = list((host / str(tenant) / pack["ref"]).iterdir())
    assert versions == [found[0]]
    expected = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert sorted(p.relative_to(found[0]) for p in found[0].rglob("*")) == expected
    assert list((host / ".incoming").iterdir()) == []


def test_prune_removes_versions_no_pack_uses_once_they_are_idle(engine, tenant, folder,
                                                                  tmp_path):
    host = tmp_path / "packs"
    old = register(engine, folder, tenant)
    old_folder = pack_store.local_folder(engine, host, old)
    manifest = folder / "pack.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    with transaction(engine) as conn:
        packs.reload(conn, tenant, old["id"], archive=None, packs_root=host, actor=OPERATOR,
                     allowed=None)
        new = pack_row(conn, tenant, folder)
    assert new["archive_sha256"] != old["archive_sha256"]
    assert stored(engine, old["archive_sha256"]) is None  # nothing points at it any more
    new_folder = pack_store.local_folder(engine, host, new)

    assert pack_store.prune(engine, host, unused_s=3600) == []  # used a moment ago
    assert pack_store.prune(engine, host, unused_s=0) == [old_folder]
    assert new_folder.is_dir() and not old_folder.exists()

    with transaction(engine) as conn:
        packs.delete_pack(conn, tenant, new["id"], OPERATOR)
    assert stored(engine, new["archive_sha256"]) is None
    assert pack_store.prune(engine, host, unused_s=0) == [new_folder]


def test_an_upload_is_stored_as_it_came(engine, tenant, tmp_path):
    data = tar_gz(copy_pack(TEST_PACK, tmp_path, rows.unique("upload")))
    with transaction(engine) as conn:
        outcome = packs.register_archive(conn, data, packs_root=tmp_path / "gateway" / "packs",
                                         tenant_id=tenant, force=False, actor=OPERATOR)
    assert outcome.data["archive_sha256"] == hashlib.sha256(data).hexdigest()
    assert stored(engine, outcome.data["archive_sha256"]) == data
