"""Tenants and users: registration, login and the users of a tenant."""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from .auth import Offload, hash_password, verify_password
from .db import isoformat
from .errors import ConflictError, NotFoundError, UnauthorizedError, ValidationError
from .models import tenants, users
from .states import Role


def to_api(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "tenant_id": row["tenant_id"],
        "role": row["role"],
        "created_at": isoformat(row["created_at"]),
    }


def check_credentials_shape(username: Any, password: Any) -> None:
    fields = {}
    if not isinstance(username, str) or not (1 <= len(username) <= 200):
        fields["username"] = "must be a string of 1 to 200 characters"
    if not isinstance(password, str) or len(password) < 8:
        fields["password"] = "must be a string of at least 8 characters"
    if fields:
        raise ValidationError("Invalid credentials", fields)


def create_user(
    conn: Connection, *, tenant_id: int, username: str, password: str, role: str,
    actor_type: str, actor: str, offload: Offload,
) -> dict[str, Any]:
    """A user of an existing tenant, audited as created by `actor`; the hash runs via `offload`."""
    check_credentials_shape(username, password)
    if role not in {r.value for r in Role}:
        raise ValidationError("Invalid role", {"role": f"must be one of {[r.value for r in Role]}"})
    if conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
        raise NotFoundError(f"Tenant {tenant_id} not found")
    password_hash = offload(hash_password, password)
    try:
        with conn.begin_nested():
            row = conn.execute(
                insert(users)
                .values(tenant_id=tenant_id, username=username,
                        password_hash=password_hash, role=role)
                .returning(users)
            ).mappings().one()
    except IntegrityError as exc:
        raise ConflictError(f"Username '{username}' is taken") from exc
    audit.record(conn, tenant_id=tenant_id, actor_type=actor_type, actor=actor,
                 action="user.created", entity_type="user", entity_id=row["id"],
                 details={"username": username, "role": role})
    return dict(row)


def create_in_new_tenant(
    conn: Connection, *, username: str, password: str, role: str, tenant: str | None,
    actor_type: str, actor: str, offload: Offload,
) -> dict[str, Any]:
    """A new tenant and its first user; `tenant` names it (unique), else a name is generated."""
    check_credentials_shape(username, password)
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise ConflictError(f"Username '{username}' is taken")
    name = tenant or f"{username}-{pysecrets.token_hex(4)}"
    try:
        with conn.begin_nested():
            tenant_id = conn.execute(
                insert(tenants).values(name=name).returning(tenants.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise ConflictError(f"Tenant '{name}' exists; ask its admin for an account") from exc
    return create_user(conn, tenant_id=tenant_id, username=username, password=password,
                       role=role, actor_type=actor_type, actor=actor, offload=offload)


def register(
    conn: Connection, *, username: str, password: str, tenant: str | None, offload: Offload
) -> dict[str, Any]:
    """Self-service sign-up (when registration is open): a new tenant whose first user is its
    admin."""
    return create_in_new_tenant(conn, username=username, password=password,
                                role=Role.ADMIN.value, tenant=tenant, actor_type="user",
                                actor=f"register:{username}", offload=offload)


def login(conn: Connection, username: str, password: str, *, offload: Offload) -> dict[str, Any]:
    """The user whose credentials these are; anything else is the same 401 after the same work."""
    if "\x00" in username or len(username) > 200:  # no such user can exist; PostgreSQL refuses NUL
        offload(verify_password, None, password)  # same work as a real miss
        raise UnauthorizedError("Invalid username or password")
    row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
    if not offload(verify_password, row["password_hash"] if row else None, password) or row is None:
        raise UnauthorizedError("Invalid username or password")
    return dict(row)


def get(conn: Connection, tenant_id: int, user_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(users).where(users.c.id == user_id, users.c.tenant_id == tenant_id)
    ).mappings().first()
    if row is None:
        raise NotFoundError(f"User {user_id} not found")
    return dict(row)


def list_users(conn: Connection, tenant_id: int, limit: int, offset: int) -> tuple[list, int]:
    where = users.c.tenant_id == tenant_id
    total = conn.execute(select(func.count()).select_from(users).where(where)).scalar_one()
    rows = conn.execute(
        select(users).where(where).order_by(users.c.created_at.desc(), users.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings()
    return [to_api(r) for r in rows], total


def revoke_tokens(conn: Connection, tenant_id: int, user_id: int, *, at: float,
                  reason: str) -> None:
    """Refuse every access and refresh token of the user issued until `at` (epoch seconds, the
    gateway's clock, as the tokens' `iat`): logout everywhere, or a changed password."""
    done = conn.execute(
        update(users).where(users.c.id == user_id, users.c.tenant_id == tenant_id)
        .values(tokens_valid_after=func.to_timestamp(at)).returning(users.c.id)
    ).first()
    if done is None:
        raise NotFoundError(f"User {user_id} not found")
    audit.record(conn, tenant_id=tenant_id, actor_type="user", actor=f"user:{user_id}",
                 action="user.tokens_revoked", entity_type="user", entity_id=user_id,
                 details={"reason": reason})


def tokens_revoked(row: Any, issued_at: float | None) -> bool:
    """Was a token of this user issued at `issued_at` revoked by a later logout?"""
    after = row["tokens_valid_after"]
    return after is not None and (issued_at is None or issued_at <= after.timestamp())


def change_password(
    conn: Connection, tenant_id: int, user_id: int, current: Any, new: Any, *, at: float,
    offload: Offload,
) -> dict[str, Any]:
    """Set a new password after checking the current one; the user's tokens until `at` are
    revoked (the caller gets a new pair). 401 for a wrong current password."""
    fields = {}
    if not isinstance(current, str):
        fields["current_password"] = "must be a string"
    if not isinstance(new, str) or len(new) < 8:
        fields["new_password"] = "must be a string of at least 8 characters"
    if fields:
        raise ValidationError("Invalid password change", fields)
    row = get(conn, tenant_id, user_id)
    if not offload(verify_password, row["password_hash"], current):
        raise UnauthorizedError("The current password is not right")
    conn.execute(update(users).where(users.c.id == user_id)
                 .values(password_hash=offload(hash_password, new)))
    revoke_tokens(conn, tenant_id, user_id, at=at, reason="password changed")
    return get(conn, tenant_id, user_id)
