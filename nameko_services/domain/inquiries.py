"""Inquiries (api.md "Inquiries"): the repository, the API shape and answering one.

Every status change is a conditional update on `status = 'pending'`, so a second answer, an
answer racing the expiry, or a redelivered message changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from sqlalchemy import Connection, func, insert, select, text, update

from . import audit
from .db import Row, isoformat
from .errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from .models import executions, inquiries, users
from .states import ExecutionStatus, InquiryStatus, Role

I = InquiryStatus  # noqa: E741


def to_api(row: Row) -> dict[str, Any]:
    """api.md's `inquiry` object (plus `roles`)."""
    return {
        "id": row["id"],
        "execution_id": row["execution_id"],
        "prompt": row["prompt"],
        "schema": row["schema"],
        "status": row["status"],
        "ttl_seconds": row["ttl_seconds"],
        "expires_at": isoformat(row["expires_at"]),
        "default_response": row["default_response"],
        "response": row["response"],
        "roles": row["roles"],
        "responded_by": row["responded_by"],
        "responded_at": isoformat(row["responded_at"]),
        "created_at": isoformat(row["created_at"]),
    }


def check_schema(schema: Any) -> None:
    """Raise ValidationError when `schema` is not a JSON Schema."""
    if not isinstance(schema, Mapping | bool):
        raise ValidationError("Invalid inquiry schema", {"parameters.schema": "must be an object"})
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError("Invalid inquiry schema",
                              {"parameters.schema": exc.message}) from exc


def schema_errors(schema: Any, value: Any, where: str = "response") -> dict[str, str]:
    """Field path → message for every way `value` breaks `schema` (empty when it fits)."""
    errors: dict[str, str] = {}
    for error in Draft202012Validator(schema).iter_errors(value):
        path = ".".join([where, *(str(p) for p in error.absolute_path)])
        errors.setdefault(path, error.message)
    return errors


def create(
    conn: Connection,
    *,
    tenant_id: int,
    execution_id: int,
    prompt: str,
    schema: Any,
    ttl_seconds: int,
    default_response: Any = None,
    roles: list[str] | None = None,
) -> dict[str, Any]:
    """Insert a pending inquiry expiring `ttl_seconds` from now (database clock)."""
    row = conn.execute(
        insert(inquiries).values(
            tenant_id=tenant_id, execution_id=execution_id, prompt=prompt, schema=schema,
            status=I.PENDING.value, ttl_seconds=ttl_seconds,
            expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, float(ttl_seconds)),
            default_response=default_response, roles=roles,
        ).returning(inquiries)
    ).mappings().one()
    audit.record(conn, tenant_id=tenant_id, actor_type="service", actor="executor",
                 action="inquiry.created", entity_type="inquiry", entity_id=row["id"],
                 details={"execution_id": execution_id, "ttl_seconds": ttl_seconds})
    return dict(row)


def get(conn: Connection, tenant_id: int, inquiry_id: int, *, lock: bool = False
        ) -> dict[str, Any]:
    stmt = select(inquiries).where(inquiries.c.id == inquiry_id,
                                   inquiries.c.tenant_id == tenant_id)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Inquiry {inquiry_id} not found")
    return dict(row)


def find(conn: Connection, inquiry_id: int) -> dict[str, Any] | None:
    """By id alone, for a service acting on its own timer."""
    row = conn.execute(select(inquiries).where(inquiries.c.id == inquiry_id)).mappings().first()
    return dict(row) if row is not None else None


def pending_for_execution(conn: Connection, execution_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(inquiries).where(inquiries.c.execution_id == execution_id,
                                inquiries.c.status == I.PENDING.value)
        .order_by(inquiries.c.id.desc()).limit(1)
    ).mappings().first()
    return dict(row) if row is not None else None


def list_inquiries(
    conn: Connection, tenant_id: int, *, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's inquiries, newest first, optionally of one status."""
    where = [inquiries.c.tenant_id == tenant_id]
    if status:
        where.append(inquiries.c.status == status)
    total = conn.execute(select(func.count()).select_from(inquiries).where(*where)).scalar_one()
    rows = conn.execute(
        select(inquiries).where(*where)
        .order_by(inquiries.c.created_at.desc(), inquiries.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings()
    return [to_api(r) for r in rows], total


def _username(conn: Connection, user_id: int) -> str | None:
    return conn.execute(select(users.c.username).where(users.c.id == user_id)).scalar()


def respond(
    conn: Connection,
    *,
    tenant_id: int,
    inquiry_id: int,
    response: Any,
    role: str,
    user_id: int,
    actor: str,
) -> dict[str, Any]:
    """Answer a pending inquiry: 404 unknown, 409 answered/expired/execution gone, 403 role,
    422 schema. Returns the answered inquiry in its API shape."""
    row = get(conn, tenant_id, inquiry_id, lock=True)
    if row["status"] == I.RESPONDED:
        raise ConflictError(f"Inquiry {inquiry_id} was already answered",
                            {"status": row["status"]})
    expires_at = row["expires_at"]
    if row["status"] == I.EXPIRED or (expires_at is not None and expires_at <= now(conn)):
        raise ConflictError(f"Inquiry {inquiry_id} has expired", {"status": I.EXPIRED.value})
    allowed = row["roles"] or []
    if allowed and role not in allowed and role != Role.ADMIN:
        raise ForbiddenError(
            f"Role '{role}' may not answer inquiry {inquiry_id} (allowed: {', '.join(allowed)})",
            {"role": role, "roles": allowed},
        )
    errors = schema_errors(row["schema"], response)
    if errors:
        raise ValidationError("Response does not match the inquiry's schema", errors)
    status = conn.execute(
        select(executions.c.status).where(executions.c.id == row["execution_id"])
    ).scalar()
    if status != ExecutionStatus.PAUSED:
        raise ConflictError(
            f"Inquiry {inquiry_id} no longer waits: its execution is {status}",
            {"execution_status": status},
        )
    responder = _username(conn, user_id) or actor
    answered = conn.execute(
        update(inquiries)
        .where(inquiries.c.id == inquiry_id, inquiries.c.status == I.PENDING.value)
        .values(status=I.RESPONDED.value, response=response, responded_by=responder,
                responded_at=func.now())
        .returning(inquiries)
    ).mappings().one()
    audit.record(conn, tenant_id=tenant_id, actor_type="user", actor=actor,
                 action="inquiry.responded", entity_type="inquiry", entity_id=inquiry_id,
                 details={"execution_id": row["execution_id"], "responded_by": responder})
    return to_api(answered)


def expire(conn: Connection, inquiry_id: int, *, reason: str) -> dict[str, Any] | None:
    """pending → expired; None when it was answered (or expired) first."""
    row = conn.execute(
        update(inquiries)
        .where(inquiries.c.id == inquiry_id, inquiries.c.status == I.PENDING.value)
        .values(status=I.EXPIRED.value)
        .returning(inquiries)
    ).mappings().one_or_none()
    if row is None:
        return None
    audit.record(conn, tenant_id=row["tenant_id"], actor_type="service", actor="executor",
                 action="inquiry.expired", entity_type="inquiry", entity_id=inquiry_id,
                 details={"execution_id": row["execution_id"], "reason": reason,
                          "default_applied": row["default_response"] is not None})
    return dict(row)


def responded_but_paused(conn: Connection, limit: int = 500) -> list[tuple[int, int]]:
    """(inquiry id, tenant id) of answered inquiries whose execution still waits (lost news)."""
    rows = conn.execute(
        select(inquiries.c.id, inquiries.c.tenant_id)
        .join(executions, executions.c.id == inquiries.c.execution_id)
        .where(inquiries.c.status == I.RESPONDED.value,
               executions.c.status == ExecutionStatus.PAUSED.value)
        .order_by(inquiries.c.id).limit(limit)
    )
    return [(r.id, r.tenant_id) for r in rows]


def now(conn: Connection) -> datetime:
    """The database clock (expiry is decided against it, never against a process clock)."""
    value = conn.execute(text("select now()")).scalar_one()
    return value if value.tzinfo else value.replace(tzinfo=UTC)
