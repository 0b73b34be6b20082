"""Key rotation: re-encrypt every secret and encrypted datastore value under the active key.

Online by construction. Rows move in small batches, each batch one short transaction that
locks only its own rows (`FOR UPDATE SKIP LOCKED`, so a writer is never queued behind the
rotation and the rotation never waits on a writer). Every process decrypts with any key of its
keyring, so reads keep working whichever key a row is under at that moment; a row a writer
skipped past us is rewritten by that writer under the active key anyway. `remaining` in the
report counts what is still under another key: run again until it is zero, then drop the old
key from the keyring. `attune rotate-keys --config X` calls `rotate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import ColumnElement, Engine, Table, func, select, true, update

from . import audit
from . import datastore as datastore_mod
from . import secrets as secrets_mod
from .crypto import Cipher
from .errors import ConfigurationError
from .models import datastore_items, secrets

log = logging.getLogger(__name__)

BATCH_SIZE = 200


@dataclass(frozen=True, slots=True)
class Target:
    """One table of ciphertexts: its rows, their associated data, which rows are encrypted."""

    name: str
    table: Table
    aad: Callable[[int, str], bytes]
    encrypted: Callable[[], ColumnElement[bool]]


TARGETS = (
    Target("secrets", secrets, secrets_mod.aad, true),
    Target("datastore", datastore_items, datastore_mod.aad,
           lambda: datastore_items.c.encrypted.is_(True)),
)


def _stale(target: Target, active_key_id: str) -> list[ColumnElement[bool]]:
    return [target.encrypted(), target.table.c.key_id != active_key_id]


def remaining(engine: Engine, active_key_id: str) -> dict[str, int]:
    """How many ciphertexts of each kind are not yet under the active key."""
    with engine.connect() as conn:
        return {
            t.name: conn.execute(
                select(func.count()).select_from(t.table).where(*_stale(t, active_key_id))
            ).scalar_one()
            for t in TARGETS
        }


def _rotate_batch(
    engine: Engine, cipher: Cipher, target: Target, after_id: int, batch_size: int,
    failed: list[dict[str, Any]],
) -> tuple[int, int | None]:
    """Re-encrypt one batch of rows with id > after_id; (rows rewritten, last id or None)."""
    table = target.table
    done = 0
    with engine.begin() as conn:
        rows = conn.execute(
            select(table.c.id, table.c.tenant_id, table.c.key, table.c.ciphertext,
                   table.c.key_id)
            .where(table.c.id > after_id, *_stale(target, cipher.active_key_id))
            .order_by(table.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0, None
        for row in rows:
            associated = target.aad(row.tenant_id, row.key)
            try:
                value = cipher.decrypt(row.ciphertext, row.key_id, associated)
            except (InvalidTag, ConfigurationError) as exc:
                # Never log the value; the id, key name and key id say enough to investigate.
                log.error("cannot decrypt %s row %s (key id %s): %s", target.name, row.id,
                          row.key_id, type(exc).__name__, extra={"tenant_id": row.tenant_id})
                failed.append({"table": target.name, "id": row.id, "key_id": row.key_id})
                continue
            blob, key_id = cipher.encrypt(value, aad=associated)
            done += conn.execute(
                update(table)
                .where(table.c.id == row.id, table.c.key_id == row.key_id)
                .values(ciphertext=blob, key_id=key_id)
            ).rowcount
    return done, rows[-1].id


def rotate(engine: Engine, cipher: Cipher, *, batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """One online pass over every ciphertext; returns what it did and what remains.

    `{"active_key_id", "reencrypted": {"secrets": n, "datastore": n}, "failed": [{table, id,
    key_id}], "remaining": {"secrets": n, "datastore": n}}`. A row that does not decrypt (its key
    is missing from the keyring, or it was tampered with) is reported, never overwritten.
    """
    failed: list[dict[str, Any]] = []
    reencrypted = {}
    for target in TARGETS:
        count, after_id = 0, 0
        while True:
            done, last_id = _rotate_batch(engine, cipher, target, after_id, batch_size, failed)
            if last_id is None:
                break
            count, after_id = count + done, last_id
        reencrypted[target.name] = count
    report = {
        "active_key_id": cipher.active_key_id,
        "reencrypted": reencrypted,
        "failed": failed,
        "remaining": remaining(engine, cipher.active_key_id),
    }
    with engine.begin() as conn:  # operators' trail; tenant_id NULL: no tenant sees it
        audit.record(conn, tenant_id=None, actor_type="service", actor="rotate-keys",
                     action="keys.rotated", entity_type="keyring",
                     entity_id=cipher.active_key_id,
                     details={k: v for k, v in report.items() if k != "active_key_id"})
    log.info("key rotation to %s: %s", cipher.active_key_id, report)
    return report
