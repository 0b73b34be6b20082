"""Engine construction and the one way to run a unit of work (a transaction)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine, RowMapping, create_engine, event, exc

# A row as the domain hands it around: as read (`.mappings()`: SQLAlchemy's RowMapping, whose
# keys may be columns as well as names, so no Mapping[str, Any] to a type checker) or copied
# into a dict.
Row: TypeAlias = Mapping[str, Any] | RowMapping


# A connection back in the pool for longer than this is pinged before it is handed out again.
IDLE_PING_SECONDS = 1.0


def make_engine(url: str, pool_size: int = 10, *, autocommit: bool = False) -> Engine:
    """A pooled engine whose idle connections are pinged before use (`_ping_when_idle`).

    `hide_parameters`: a failed statement's error (and any log of it) never shows the bound
    values, which may be secret parameters or datastore values. `autocommit`: every statement
    commits on its own, with no `BEGIN`/`COMMIT` round trips; for work that is one statement
    (a connection switched to autocommit per use instead costs a `SET` at each check-in).
    LIFO: the connection returned last is taken first, so a pool in light use keeps reusing a
    warm one instead of cycling through all of them, each idle long enough to be pinged.
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_use_lifo=True,
        future=True,
        hide_parameters=True,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_when_idle)
    return engine


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_when_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect check, only for a connection idle over a second.

    A connection in steady use skips the round trip (one per transaction under load: about a
    sixth of all statements); after a PostgreSQL restart a busy one fails its next statement,
    which invalidates the whole pool, so the process pays one failed unit of work (retried by
    its caller or its message's redelivery) and then reconnects.
    """
    idle = time.monotonic() - record.info.get("checked_in", 0.0)
    if idle < IDLE_PING_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        raise exc.DisconnectionError() from error


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """Yield a connection inside BEGIN … COMMIT (ROLLBACK on error)."""
    with engine.begin() as conn:
        yield conn


def utcnow() -> datetime:
    return datetime.now(UTC)


# Two digits of 0..59 and the milliseconds with their point and the zone, looked up (isoformat).
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(60))
_MILLISECONDS = tuple(f".{number:03d}Z" for number in range(1000))


def isoformat(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as api.md specifies (`2026-01-27T10:30:00.123Z`)."""
    if value is None:
        return None
    # PostgreSQL hands back UTC (the session's TimeZone) as `datetime.UTC` itself.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Built from looked-up parts: 0.33 µs against 0.93 µs for `isoformat(timespec=…)` and
    # re-suffixing (an aware datetime formats its offset); a page of 50 executions formats 350.
    two = _TWO_DIGITS
    return (f"{value.year:04d}-{two[value.month]}-{two[value.day]}T{two[value.hour]}:"
            f"{two[value.minute]}:{two[value.second]}{_MILLISECONDS[value.microsecond // 1000]}")
