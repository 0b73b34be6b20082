"""Engine construction and the one way to run a unit of work (a transaction)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine, RowMapping, create_engine

# A row as the domain hands it around: as read (`.mappings()`: SQLAlchemy's RowMapping, whose
# keys may be columns as well as names, so no Mapping[str, Any] to a type checker) or copied
# into a dict.
Row: TypeAlias = Mapping[str, Any] | RowMapping


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """A pooled engine; pre-ping so a PostgreSQL restart costs one retry, not an outage.

    `hide_parameters`: a failed statement's error (and any log of it) never shows the bound
    values, which may be secret parameters or datastore values.
    """
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        future=True,
        hide_parameters=True,
    )


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """Yield a connection inside BEGIN … COMMIT (ROLLBACK on error)."""
    with engine.begin() as conn:
        yield conn


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as api.md specifies (`2026-01-27T10:30:00.123Z`)."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
