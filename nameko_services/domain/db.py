"""Engine construction and the one way to run a unit of work (a transaction)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import Connection, Engine, RowMapping, create_engine, event, exc
from sqlalchemy.sql.base import Executable

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
    event.listen(engine, "before_cursor_execute", _run_prepared, retval=True)
    return engine


S = TypeVar("S", bound=Executable)
_PREPARED_OPTION = "attune_prepared"


def prepared(statement: S) -> S:
    """`statement`, to run as a server-side prepared statement on each connection it meets.

    PostgreSQL then parses, analyses and (once it settles on a generic plan) plans it once per
    connection instead of at every run: half of its CPU on the hot path. psycopg2 still
    interpolates the values on the client (`EXECUTE name(values)`), which is cheaper here than
    psycopg 3's binding (docs/performance.md). Each value is declared with its bind's type; an
    untyped one needs a place that gives it one (a column, a cast). Not for a statement whose
    plan depends on its values (a partial index): a generic plan cannot know them.
    """
    return statement.execution_options(**{_PREPARED_OPTION: True})


@dataclass(frozen=True)
class _PreparedForm:
    name: str
    prepare: str  # PREPARE name(types) AS <the statement with $1, $2…>
    execute: str  # EXECUTE name(%(a)s, %(b)s…): psycopg2 interpolates the values


_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s")
_TYPE_MODIFIER = re.compile(r"\(\d+(?:,\s*\d+)?\)")  # VARCHAR(64): the value's own length
_EXPANDED = re.compile(r"_\d+$")  # IN (…)'s values: status_1_1, status_1_2 of `status_1`


def _prepared_form(sql: str, context: Any) -> _PreparedForm:
    """The PREPARE and EXECUTE of a statement as SQLAlchemy renders it for psycopg2, each
    parameter declared with its bind's type (`unknown`, inferred from its place, if it has
    none): a value in a SELECT list has no place to infer a type from."""
    form = _FORMS.get(sql)
    if form is not None:
        return form
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"  # psycopg2's escaped percent sign; PREPARE runs without values
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    body = _PLACEHOLDER.sub(number, sql)
    binds = context.compiled.binds
    types = []
    for name in names:
        bind = binds.get(name)
        if bind is None:
            bind = binds.get(_EXPANDED.sub("", name))
        types.append("unknown" if bind is None else _declared_type(bind.type, context.dialect))
    label = "attune_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
    declared = f"({', '.join(types)})" if names else ""
    values = f"({', '.join(f'%({name})s' for name in names)})" if names else ""
    form = _PreparedForm(label, f"PREPARE {label}{declared} AS {body}",
                         f"EXECUTE {label}{values}")
    if len(_FORMS) < 1024:  # bounded: a marked statement has a few shapes (its filters)
        _FORMS[sql] = form
    return form


_FORMS: dict[str, _PreparedForm] = {}


def _declared_type(type_: Any, dialect: Any) -> str:
    """A bind's type as PREPARE declares it, without a length; `unknown` for an untyped bind
    or a type of SQLAlchemy's own with no SQL name (a JSON path's index)."""
    if type_._isnull:
        return "unknown"
    try:
        rendered = dialect.type_compiler_instance.process(type_)
    except (AttributeError, NotImplementedError, exc.CompileError):
        return "unknown"
    return _TYPE_MODIFIER.sub("", rendered)


def _run_prepared(conn: Connection, cursor: Any, statement: str, parameters: Any,
                  context: Any, executemany: bool) -> tuple[str, Any]:
    """A statement marked `prepared`: PREPAREd on this connection if it is not yet (prepared
    statements outlive a rolled-back transaction), then run by EXECUTE."""
    if executemany or context is None or not context.execution_options.get(_PREPARED_OPTION):
        return statement, parameters
    form = _prepared_form(statement, context)
    known = conn.connection.info.setdefault("prepared", set())
    if form.name not in known:
        cursor.execute(form.prepare)
        known.add(form.name)
    return form.execute, parameters


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
