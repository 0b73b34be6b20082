"""The tenant key-value store: plain or AES-256-GCM encrypted values, optionally expiring.

Read by rule criteria (`datastore.<key>`), workflow templates and actions (through the SDK and
the gateway). An expired item is treated as missing everywhere, before any sweeper deletes it.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, func, null, or_, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import audit
from .crypto import Cipher
from .db import isoformat, utcnow
from .errors import AttuneError, NotFoundError, ValidationError
from .json_values import ensure_storable
from .models import datastore_items as items
from .parameters import MASK

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:/-]{1,400}")
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600


def is_valid_key(key: Any) -> bool:
    """Keys are 1-400 characters of letters, digits and `_ . : / -`."""
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


def check_key(key: Any, field: str = "key") -> str:
    if not is_valid_key(key):
        raise ValidationError(
            "Invalid datastore key", {field: "must be 1-400 characters of [A-Za-z0-9_.:/-]"}
        )
    return key


def check_ttl(ttl_seconds: Any) -> int | None:
    if ttl_seconds is None:
        return None
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not (
        1 <= ttl_seconds <= MAX_TTL_SECONDS
    ):
        raise ValidationError(
            "Invalid ttl_seconds",
            {"ttl_seconds": f"must be an integer between 1 and {MAX_TTL_SECONDS}"},
        )
    return ttl_seconds


def aad(tenant_id: int, key: str) -> bytes:
    """Associated data of a datastore ciphertext (also used by key rotation)."""
    # Binding the ciphertext to tenant and key: a row copied elsewhere will not decrypt.
    return f"{tenant_id}:{key}".encode()


def _live():
    return or_(items.c.expires_at.is_(None), items.c.expires_at > func.now())


class DecryptionError(AttuneError):
    """A stored ciphertext does not open with its key id and AAD (tampered, moved, or wrong key)."""


def _value(cipher: Cipher, row: Any) -> Any:
    if not row["encrypted"]:
        return row["value"]
    try:
        return cipher.decrypt(row["ciphertext"], row["key_id"], aad(row["tenant_id"], row["key"]))
    except InvalidTag as exc:
        log.error("datastore item %s of tenant %s does not decrypt", row["key"], row["tenant_id"],
                  extra={"tenant_id": row["tenant_id"]})
        raise DecryptionError(f"Datastore key '{row['key']}' cannot be decrypted") from exc


def to_api(row: Any, value: Any) -> dict[str, Any]:
    """api.md's datastore item; the caller decides whether `value` is decrypted or masked."""
    return {
        "key": row["key"],
        "value": value,
        "encrypted": row["encrypted"],
        "expires_at": isoformat(row["expires_at"]),
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def _live_row(conn: Connection, tenant_id: int, key: str) -> Any:
    return conn.execute(
        select(items).where(items.c.tenant_id == tenant_id, items.c.key == key, _live())
    ).mappings().one_or_none()


def get_value(conn: Connection, cipher: Cipher, tenant_id: int, key: str) -> Any | None:
    """The decrypted value of a live key; None when missing or expired (never raises for that)."""
    if not is_valid_key(key):
        return None
    row = _live_row(conn, tenant_id, key)
    return None if row is None else _value(cipher, row)


def get_item(conn: Connection, cipher: Cipher, tenant_id: int, key: str) -> dict[str, Any]:
    """One live item in API shape, decrypted; NotFoundError when missing or expired."""
    row = _live_row(conn, tenant_id, key) if is_valid_key(key) else None
    if row is None:
        raise NotFoundError(f"Datastore key '{key}' not found")
    return to_api(row, _value(cipher, row))


def get_all(conn: Connection, cipher: Cipher | None, tenant_id: int) -> dict[str, Any]:
    """Every live key of the tenant (the `datastore` of rule and template contexts): decrypted,
    or, without a cipher, with encrypted values shown as "***" (a rule dry-run shows what it
    renders, so it never decrypts).

    An item that does not decrypt is left out (and logged) rather than failing the whole read.
    """
    rows = conn.execute(
        select(items).where(items.c.tenant_id == tenant_id, _live())
    ).mappings()
    values = {}
    for row in rows:
        if cipher is None:
            values[row["key"]] = MASK if row["encrypted"] else row["value"]
            continue
        try:
            values[row["key"]] = _value(cipher, row)
        except DecryptionError:  # logged; one bad item must not blind every rule of the tenant
            continue
    return values


def list_items(
    conn: Connection, tenant_id: int, limit: int, offset: int, prefix: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Live items, newest first; encrypted values shown as "***" (never decrypted here)."""
    where = [items.c.tenant_id == tenant_id, _live()]
    if prefix:
        where.append(items.c.key.startswith(prefix, autoescape=True))
    total = conn.execute(select(func.count()).select_from(items).where(*where)).scalar_one()
    rows = conn.execute(
        select(items).where(*where)
        .order_by(items.c.created_at.desc(), items.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings()
    return [to_api(r, MASK if r["encrypted"] else r["value"]) for r in rows], total


def put(
    conn: Connection,
    cipher: Cipher,
    tenant_id: int,
    key: str,
    value: Any,
    *,
    encrypted: bool = False,
    ttl_seconds: int | None = None,
    actor_type: str,
    actor: str,
) -> tuple[dict[str, Any], bool]:
    """Create or replace a key; returns (item in API shape, created).

    `created` is False only when a live item was replaced (an expired one counts as missing).
    The returned value is masked when encrypted: the caller already knows it.
    """
    check_key(key)
    ttl = check_ttl(ttl_seconds)
    if not isinstance(encrypted, bool):
        raise ValidationError("Invalid encrypted flag", {"encrypted": "must be true or false"})
    ensure_storable(value, "value")
    stored: dict[str, Any]
    if encrypted:
        ciphertext, key_id = cipher.encrypt(value, aad=aad(tenant_id, key))
        # SQL NULL, not JSON null: the encrypted_shape check constraint insists on it.
        stored = {"value": null(), "ciphertext": ciphertext, "key_id": key_id}
    else:
        stored = {"value": value, "ciphertext": None, "key_id": None}
    expires_at = utcnow() + timedelta(seconds=ttl) if ttl else None
    row = conn.execute(
        pg_insert(items)
        .values(tenant_id=tenant_id, key=key, encrypted=encrypted, expires_at=expires_at, **stored)
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(items)
    ).mappings().one_or_none()
    created = row is not None
    if row is None:  # the key exists (perhaps written a moment ago by a concurrent call)
        existing = conn.execute(
            select(items.c.id, items.c.expires_at)
            .where(items.c.tenant_id == tenant_id, items.c.key == key)
            .with_for_update()
        ).one()
        created = existing.expires_at is not None and existing.expires_at <= utcnow()
        fresh = {"created_at": func.now()} if created else {}
        row = conn.execute(
            update(items)
            .where(items.c.id == existing.id)
            .values(encrypted=encrypted, expires_at=expires_at, updated_at=func.now(),
                    **fresh, **stored)
            .returning(items)
        ).mappings().one()
    audit.record(
        conn, tenant_id=tenant_id, actor_type=actor_type, actor=actor,
        action="datastore.created" if created else "datastore.updated",
        entity_type="datastore", entity_id=key,
        details={"encrypted": encrypted, "ttl_seconds": ttl},
    )
    return to_api(row, MASK if encrypted else row["value"]), created


def delete(conn: Connection, tenant_id: int, key: str, *, actor_type: str, actor: str) -> None:
    """Remove a key; NotFoundError when it is missing or already expired."""
    if not is_valid_key(key):
        raise NotFoundError(f"Datastore key '{key}' not found")
    gone = conn.execute(
        sql_delete(items)
        .where(items.c.tenant_id == tenant_id, items.c.key == key)
        .returning(items.c.expires_at)
    ).one_or_none()
    if gone is None or (gone.expires_at is not None and gone.expires_at <= utcnow()):
        raise NotFoundError(f"Datastore key '{key}' not found")
    audit.record(
        conn, tenant_id=tenant_id, actor_type=actor_type, actor=actor,
        action="datastore.deleted", entity_type="datastore", entity_id=key,
    )


def purge_expired(conn: Connection, tenant_id: int | None = None) -> int:
    """Delete expired items (all tenants when tenant_id is None); returns how many."""
    where = [items.c.expires_at <= func.now()]
    if tenant_id is not None:
        where.append(items.c.tenant_id == tenant_id)
    return conn.execute(sql_delete(items).where(*where)).rowcount
