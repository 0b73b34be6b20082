"""API keys: long-lived credentials for scripts and CI, acting as their user with at most a role.

A key is `atk_` and 43 random URL-safe characters, shown once when it is made; only its SHA-256
is stored (a key has 256 bits of entropy, so a fast hash is enough and a lookup is one indexed
read). Every use reads the key and its user, so a revoked or expired key, or a removed user, is
refused at once by every gateway; the role a key acts with is the lower of its own and its
user's current one.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from . import audit
from .auth import Principal
from .db import isoformat
from .errors import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError
from .models import api_keys, users
from .states import Role

KEY_PREFIX = "atk_"
SHOWN_PREFIX_CHARS = 12  # what lists show of a key: `atk_` and 8 characters
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600
# Lowest first: a key may not act above its user.
ROLE_ORDER = (Role.VIEWER, Role.EXECUTOR, Role.EDITOR, Role.ADMIN)
TOKEN_TYPE = "api_key"


def looks_like_key(credential: str) -> bool:
    """Is this Bearer credential an API key rather than a JWT?"""
    return credential.startswith(KEY_PREFIX)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def lower_role(first: str, second: str) -> str:
    return min(first, second, key=lambda role: ROLE_ORDER.index(Role(role)))


def to_api(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "role": row["role"],
        "user_id": row["user_id"],
        "created_at": isoformat(row["created_at"]),
        "expires_at": isoformat(row["expires_at"]),
        "revoked_at": isoformat(row["revoked_at"]),
    }


def _check_new(body: dict[str, Any], user_role: str) -> tuple[str, str, int | None]:
    """(name, role, expires_in) of a valid request; ValidationError naming each bad field."""
    fields: dict[str, str] = {}
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        fields["name"] = "must be a string of 1 to 200 characters"
    role = body.get("role", user_role)
    if role not in {r.value for r in Role}:
        fields["role"] = f"must be one of {[r.value for r in ROLE_ORDER]}"
    expires_in = body.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int)
                                   or not 60 <= expires_in <= MAX_EXPIRES_IN):
        fields["expires_in"] = f"must be whole seconds from 60 to {MAX_EXPIRES_IN}"
    if fields:
        raise ValidationError("Invalid API key request", fields)
    return str(name).strip(), str(role), expires_in


def create(conn: Connection, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """A new key of the caller's, `key` included (the only time it is shown).

    Only a user's own login makes keys: a key (or an action's token) cannot make another."""
    if who.token_type != "access":
        raise ForbiddenError("API keys are made with a user's login, not with another key",
                             {"token_type": who.token_type})
    name, role, expires_in = _check_new(body, who.role)
    if lower_role(role, who.role) != role:
        raise ForbiddenError(f"A key's role may not be above your own ('{who.role}')",
                             {"role": role})
    key = KEY_PREFIX + pysecrets.token_urlsafe(32)
    expires_at = (datetime.now(UTC) + timedelta(seconds=expires_in)) if expires_in else None
    row = conn.execute(
        insert(api_keys).values(
            tenant_id=who.tenant_id, user_id=who.user_id, name=name,
            prefix=key[:SHOWN_PREFIX_CHARS], key_hash=_digest(key), role=role,
            expires_at=expires_at,
        ).returning(api_keys)
    ).mappings().one()
    audit.record(conn, tenant_id=who.tenant_id, actor_type="user", actor=who.actor,
                 action="api_key.created", entity_type="api_key", entity_id=row["id"],
                 details={"name": name, "role": role, "expires_at": isoformat(expires_at)})
    return {**to_api(row), "key": key}


def _visible(who: Principal) -> Any:
    """An admin sees the tenant's keys, anyone else their own."""
    where = api_keys.c.tenant_id == who.tenant_id
    if who.role != Role.ADMIN:
        where = and_(where, api_keys.c.user_id == who.user_id)
    return where


def list_keys(conn: Connection, who: Principal, limit: int,
              offset: int) -> tuple[list[dict[str, Any]], int]:
    where = _visible(who)
    total = conn.execute(select(func.count()).select_from(api_keys).where(where)).scalar_one()
    rows = conn.execute(
        select(api_keys).where(where).order_by(api_keys.c.id.desc()).limit(limit).offset(offset)
    ).mappings()
    return [to_api(row) for row in rows], total


def revoke(conn: Connection, who: Principal, key_id: int) -> dict[str, Any]:
    """Revoke a key (idempotent: a revoked key stays revoked at its first time)."""
    row = conn.execute(
        update(api_keys)
        .where(_visible(who), api_keys.c.id == key_id)
        .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
        .returning(api_keys)
    ).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"API key {key_id} not found")
    audit.record(conn, tenant_id=who.tenant_id, actor_type="user", actor=who.actor,
                 action="api_key.revoked", entity_type="api_key", entity_id=key_id,
                 details={"name": row["name"]})
    return to_api(row)


_USE = (
    select(api_keys.c.id, api_keys.c.role, api_keys.c.expires_at, api_keys.c.revoked_at,
           users.c.id.label("user_id"), users.c.tenant_id, users.c.role.label("user_role"))
    .join(users, users.c.id == api_keys.c.user_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"),
           users.c.tenant_id == api_keys.c.tenant_id)
)
_ACTIVE = and_(api_keys.c.revoked_at.is_(None),
               or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()))


def authenticate(conn: Connection, key: str) -> Principal:
    """The principal a presented key acts as; 401 for an unknown, revoked or expired key."""
    row = conn.execute(_USE.where(_ACTIVE), {"key_hash": _digest(key)}).mappings().one_or_none()
    if row is None:
        raise UnauthorizedError("Invalid, revoked or expired API key")
    return Principal(user_id=row["user_id"], tenant_id=row["tenant_id"],
                     role=lower_role(row["role"], row["user_role"]), token_type=TOKEN_TYPE,
                     key_id=row["id"])
