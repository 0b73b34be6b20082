"""Tenant secrets: always AES-256-GCM encrypted; only the worker ever reads a value back.

No API shape here carries a value: `to_api` has names and timestamps only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, func, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import audit
from .crypto import Cipher
from .datastore import is_valid_key
from .db import isoformat
from .errors import AttuneError, NotFoundError, ValidationError
from .models import secrets

MAX_VALUE_CHARS = 64 * 1024


def aad(tenant_id: int, key: str) -> bytes:
    """Associated data of a secret ciphertext (also used by key rotation)."""
    # Distinct from datastore AAD, so a datastore ciphertext can never pass for a secret.
    return f"secret:{tenant_id}:{key}".encode()


def to_api(row: Any) -> dict[str, Any]:
    """Name and timestamps; never the value."""
    return {
        "key": row["key"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def check(key: Any, value: Any) -> None:
    """422 naming the field for a bad key or a value that is not a non-empty string."""
    fields = {}
    if not is_valid_key(key):
        fields["key"] = "must be 1-400 characters of [A-Za-z0-9_.:/-]"
    if not isinstance(value, str) or not value:
        fields["value"] = "must be a non-empty string"
    elif len(value) > MAX_VALUE_CHARS or "\x00" in value:
        fields["value"] = f"must be at most {MAX_VALUE_CHARS} characters, without NUL"
    if fields:
        raise ValidationError("Invalid secret", fields)


def put(
    conn: Connection, cipher: Cipher, tenant_id: int, key: str, value: str, *,
    actor_type: str, actor: str,
) -> tuple[dict[str, Any], bool]:
    """Create or replace a secret; returns (name and timestamps, created)."""
    check(key, value)
    ciphertext, key_id = cipher.encrypt(value, aad=aad(tenant_id, key))
    row = conn.execute(
        pg_insert(secrets)
        .values(tenant_id=tenant_id, key=key, ciphertext=ciphertext, key_id=key_id)
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(secrets)
    ).mappings().one_or_none()
    created = row is not None
    if row is None:  # exists: replace (the row lock orders concurrent writers)
        row = conn.execute(
            update(secrets)
            .where(secrets.c.tenant_id == tenant_id, secrets.c.key == key)
            .values(ciphertext=ciphertext, key_id=key_id, updated_at=func.now())
            .returning(secrets)
        ).mappings().one()
    audit.record(
        conn, tenant_id=tenant_id, actor_type=actor_type, actor=actor,
        action="secret.created" if created else "secret.updated",
        entity_type="secret", entity_id=key,
    )
    return to_api(row), created


def get(conn: Connection, tenant_id: int, key: str) -> dict[str, Any]:
    """Name and timestamps of one secret; NotFoundError when the tenant has none by that name."""
    row = None
    if is_valid_key(key):
        row = conn.execute(
            select(secrets).where(secrets.c.tenant_id == tenant_id, secrets.c.key == key)
        ).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Secret '{key}' not found")
    return to_api(row)


def list_names(
    conn: Connection, tenant_id: int, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's secrets, newest first, names and timestamps only."""
    where = secrets.c.tenant_id == tenant_id
    total = conn.execute(select(func.count()).select_from(secrets).where(where)).scalar_one()
    rows = conn.execute(
        select(secrets.c.key, secrets.c.created_at, secrets.c.updated_at)
        .where(where)
        .order_by(secrets.c.created_at.desc(), secrets.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings()
    return [to_api(r) for r in rows], total


def delete(conn: Connection, tenant_id: int, key: str, *, actor_type: str, actor: str) -> None:
    """Remove a secret; NotFoundError when missing."""
    gone = None
    if is_valid_key(key):
        gone = conn.execute(
            sql_delete(secrets)
            .where(secrets.c.tenant_id == tenant_id, secrets.c.key == key)
            .returning(secrets.c.id)
        ).scalar_one_or_none()
    if gone is None:
        raise NotFoundError(f"Secret '{key}' not found")
    audit.record(
        conn, tenant_id=tenant_id, actor_type=actor_type, actor=actor,
        action="secret.deleted", entity_type="secret", entity_id=key,
    )


def get_values(
    conn: Connection, cipher: Cipher, tenant_id: int, names: Iterable[str]
) -> dict[str, str]:
    """Decrypted values of the named secrets for the worker; missing names are simply absent."""
    wanted = sorted({n for n in names if is_valid_key(n)})
    if not wanted:
        return {}
    rows = conn.execute(
        select(secrets).where(secrets.c.tenant_id == tenant_id, secrets.c.key.in_(wanted))
    ).mappings()
    values = {}
    for r in rows:
        try:
            values[r["key"]] = cipher.decrypt(r["ciphertext"], r["key_id"],
                                              aad(tenant_id, r["key"]))
        except InvalidTag as exc:  # tampered or moved: fail loudly, never run without it
            raise AttuneError(f"Secret '{r['key']}' cannot be decrypted") from exc
    return values
