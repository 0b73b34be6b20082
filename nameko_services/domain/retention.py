"""Retention: old history leaves PostgreSQL in small batches (docs/operations.md "Retention").

What goes, per `ATTUNE.retention` (or `attune prune --older-than`):
- executions: whole finished trees only. A root (no parent) that ended before the cutoff goes
  with every descendant, its inquiries with them, and only when every member of its tree is
  terminal, so nothing a running workflow or with-items parent still needs is ever removed.
- events created before the cutoff that the executor has processed, with their rule
  evaluations and enforcements, unless an execution still points at the event or an
  enforcement of it is still pending or still has its execution.
- audit entries older than their own (longer) cutoff. The table stays append-only for
  everything else: its trigger lets a DELETE through only for rows older than the cutoff this
  module sets for its own transaction (`attune.audit_prune_before`, migration 0008).

Each batch is one short transaction over at most `batch_size` rows, read in the order of an
index with `FOR UPDATE SKIP LOCKED` (rows another transaction holds are left for the next
pass), followed by a pause, so the hot path never queues behind a prune. One process prunes at
a time (an advisory lock); each batch adds its counts to `prune_totals`, the monotone totals
behind the `attune_pruned_rows_total` metric. `count` answers the same question without
deleting (`--dry-run`).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from . import locks
from .config_values import bounded, flag, reject_unknown
from .db import transaction
from .errors import ConfigurationError
from .states import TERMINAL_STATES

log = logging.getLogger(__name__)

# Per-table counts, in the order a pass deletes them (children before what they point at).
TABLES = ("inquiries", "executions", "rule_evaluations", "enforcements", "events", "audit_log")
_TERMINAL = sorted(s.value for s in TERMINAL_STATES)
_DAY_SECONDS = 86_400
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": _DAY_SECONDS, "w": 7 * _DAY_SECONDS}


def _days(section: Mapping[str, Any], key: str, default: float | None) -> float | None:
    """A retention in days; 0 or null keeps forever (None)."""
    if key in section and section[key] in (None, "", "null"):
        return None
    value = bounded(section, key, default or 0, "retention", minimum=0, maximum=36_500)
    return value or None


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """ATTUNE.retention: how long each kind of history is kept (days; None keeps forever), and
    how the executor's pruning job paces itself: after a batch that took t seconds it pauses
    for at least `pause_seconds` and at least t·(1 - duty_cycle)/duty_cycle, so it works at
    most that fraction of the time (the database's and the executor's)."""

    enabled: bool = True
    executions_days: float | None = 30
    events_days: float | None = 30
    audit_days: float | None = 365
    interval_seconds: float = 3_600
    batch_size: int = 1_000
    pause_seconds: float = 0.1
    duty_cycle: float = 0.2

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> RetentionSettings:
        """Parse the block; an unknown key or a value out of bounds fails naming it."""
        reject_unknown(section, cls.__dataclass_fields__, "retention")
        default = cls()
        return cls(
            enabled=flag(section.get("enabled", default.enabled)),
            executions_days=_days(section, "executions_days", default.executions_days),
            events_days=_days(section, "events_days", default.events_days),
            audit_days=_days(section, "audit_days", default.audit_days),
            interval_seconds=bounded(section, "interval_seconds", default.interval_seconds,
                                     "retention", minimum=0.1, maximum=7 * _DAY_SECONDS),
            batch_size=int(bounded(section, "batch_size", default.batch_size, "retention",
                                   minimum=1, maximum=100_000, whole=True)),
            pause_seconds=bounded(section, "pause_seconds", default.pause_seconds,
                                  "retention", minimum=0, maximum=60),
            duty_cycle=bounded(section, "duty_cycle", default.duty_cycle, "retention",
                               minimum=0.01, maximum=1),
        )

    def ages(self) -> Ages:
        """The configured retentions, in seconds."""
        def seconds(days: float | None) -> float | None:
            return None if days is None else days * _DAY_SECONDS
        return Ages(seconds(self.executions_days), seconds(self.events_days),
                    seconds(self.audit_days))


@dataclass(frozen=True, slots=True)
class Ages:
    """How old (seconds) a row of each kind must be to go; None: that kind is kept forever."""

    executions: float | None
    events: float | None
    audit: float | None


def parse_age(given: str) -> float:
    """`7d`, `12h`, `30m`, `90s`, `2w` (a bare number is days) → seconds; fails naming it."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", given or "")
    if not match or float(match.group(1)) <= 0:
        raise ConfigurationError(f"an age is a positive number with a unit s, m, h, d or w "
                                 f"(e.g. 7d), not {given!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "d"]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """The database-clock instants before which each kind goes (None: nothing of it goes)."""

    executions: datetime | None
    events: datetime | None
    audit: datetime | None

    @classmethod
    def of(cls, conn: Connection, ages: Ages) -> Cutoffs:
        def before(age: float | None) -> datetime | None:
            if age is None:
                return None
            return conn.execute(text("SELECT now() - make_interval(secs => :age)"),
                                {"age": age}).scalar_one()
        return cls(before(ages.executions), before(ages.events), before(ages.audit))


# Roots that ended before the cutoff, after the keyset cursor, in index order
# (ix_executions_prunable).
_ROOTS = """
SELECT id, finished_at FROM executions
WHERE parent_execution_id IS NULL AND finished_at < :cutoff
  AND (finished_at, id) > (:after_at, :after_id)
ORDER BY finished_at, id LIMIT :limit
"""
# Every member of the trees of `roots` (ix_executions_parent).
_TREES = """
WITH RECURSIVE roots AS ({roots}), tree AS (
    SELECT id AS root, id, status FROM executions WHERE id IN (SELECT id FROM roots)
    UNION ALL
    SELECT tree.root, c.id, c.status FROM executions c JOIN tree ON c.parent_execution_id = tree.id
)
"""
# Members of trees that are wholly terminal (root included).
_FINISHED = """
SELECT id FROM tree WHERE root NOT IN (
    SELECT root FROM tree WHERE status <> ALL(CAST(:terminal AS text[])))
"""
# An event that may go: processed, and nothing kept still needs it.
_EVENT_FREE = """
processed_at IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = ev.id {spare})
AND NOT EXISTS (SELECT 1 FROM enforcements en WHERE en.event_id = ev.id
                AND (en.status = 'created' OR en.execution_id IS NOT NULL {spare_en}))
"""


def _bump(conn: Connection, counts: Mapping[str, int]) -> None:
    """Add one batch's counts to the monotone totals (the metric's source)."""
    for table, rows in counts.items():
        if rows:
            conn.execute(text(
                "INSERT INTO prune_totals (table_name, rows) VALUES (:t, :n) ON CONFLICT "
                "(table_name) DO UPDATE SET rows = prune_totals.rows + EXCLUDED.rows"),
                {"t": table, "n": rows})


def _execution_batch(conn: Connection, cutoffs: Cutoffs, after: tuple[Any, int],
                     limit: int) -> tuple[Counter[str], tuple[Any, int] | None]:
    """Delete the finished trees of the next `limit` roots, with their inquiries and (when
    events that old go too) the enforcements that made them; return counts and the new cursor
    (None once no root is left before the cutoff)."""
    params = {"cutoff": cutoffs.executions, "after_at": after[0], "after_id": after[1],
              "limit": limit, "terminal": _TERMINAL}
    roots = conn.execute(text(_ROOTS + "FOR UPDATE SKIP LOCKED"), params).all()
    if not roots:
        return Counter(), None
    ids = conn.execute(text(_TREES.format(roots="SELECT unnest(CAST(:roots AS bigint[])) AS id")
                            + _FINISHED), {"roots": [r.id for r in roots], **params}
                       ).scalars().all()
    counts: Counter[str] = Counter()
    if ids:
        counts["inquiries"] = conn.execute(text(
            "DELETE FROM inquiries WHERE execution_id = ANY(:ids)"), {"ids": ids}).rowcount
        if cutoffs.events is not None:  # else the foreign key's SET NULL keeps them
            counts["enforcements"] = conn.execute(text(
                "DELETE FROM enforcements WHERE execution_id = ANY(:ids) "
                "AND created_at < :cutoff"), {"ids": ids, "cutoff": cutoffs.events}).rowcount
        counts["executions"] = conn.execute(text(
            "DELETE FROM executions WHERE id = ANY(:ids)"), {"ids": ids}).rowcount
    return counts, (roots[-1].finished_at, roots[-1].id)


def _event_batch(conn: Connection, cutoffs: Cutoffs, after: tuple[Any, int],
                 limit: int) -> tuple[Counter[str], tuple[Any, int] | None]:
    """Delete the next `limit` events that may go, with what hangs off them."""
    cutoff = cutoffs.events
    rows = conn.execute(text(
        "SELECT id, created_at FROM events ev WHERE created_at < :cutoff "
        "AND (created_at, id) > (:after_at, :after_id) ORDER BY created_at, id LIMIT :limit "
        "FOR UPDATE SKIP LOCKED"),
        {"cutoff": cutoff, "after_at": after[0], "after_id": after[1], "limit": limit}).all()
    if not rows:
        return Counter(), None
    ids = conn.execute(text(
        "SELECT id FROM events ev WHERE id = ANY(:ids) AND "
        + _EVENT_FREE.format(spare="", spare_en="")), {"ids": [r.id for r in rows]}
    ).scalars().all()
    counts: Counter[str] = Counter()
    if ids:
        for table in ("rule_evaluations", "enforcements"):
            counts[table] = conn.execute(text(
                f"DELETE FROM {table} WHERE event_id = ANY(:ids)"), {"ids": ids}).rowcount
        counts["events"] = conn.execute(text(
            "DELETE FROM events WHERE id = ANY(:ids)"), {"ids": ids}).rowcount
    return counts, (rows[-1].created_at, rows[-1].id)


def _audit_batch(conn: Connection, cutoffs: Cutoffs, after: tuple[Any, int],
                 limit: int) -> tuple[Counter[str], tuple[Any, int] | None]:
    """Delete the next `limit` audit entries older than the cutoff (the trigger checks it)."""
    cutoff = cutoffs.audit
    assert cutoff is not None
    conn.execute(text("SELECT set_config('attune.audit_prune_before', :cutoff, true)"),
                 {"cutoff": cutoff.isoformat()})
    ids = conn.execute(text(
        'SELECT id FROM audit_log WHERE "timestamp" < :cutoff ORDER BY "timestamp", id '
        "LIMIT :limit FOR UPDATE SKIP LOCKED"), {"cutoff": cutoff, "limit": limit}
    ).scalars().all()
    if not ids:
        return Counter(), None
    deleted = conn.execute(text("DELETE FROM audit_log WHERE id = ANY(:ids)"),
                           {"ids": ids}).rowcount
    return Counter(audit_log=deleted), after


Batch = Callable[[Connection, Cutoffs, tuple[Any, int], int],
                 tuple[Counter[str], tuple[Any, int] | None]]
# Executions first: what they free (their events) goes in the same pass.
_STEPS: tuple[tuple[str, Batch], ...] = (
    ("executions", _execution_batch), ("events", _event_batch), ("audit", _audit_batch))


def prune(engine: Engine, ages: Ages, *, batch_size: int, pause_seconds: float,
          duty_cycle: float = 1.0, keep_going: Callable[[], bool] = lambda: True,
          sleep: Callable[[float], Any] = time.sleep, take_over: bool = False
          ) -> dict[str, int] | None:
    """One pass: delete everything older than `ages` in batches; per-table counts, or None when
    another process holds the retention lock (it is pruning) — unless `take_over`: then wait
    for the lock, which that process hands over at its next batch boundary. Paced as
    RetentionSettings says; stops early once `keep_going` says so, or when a process waiting
    for the lock took it at a batch boundary (what is left goes on the next pass)."""
    with engine.connect() as lock_conn:
        if take_over:
            locks.lock(lock_conn, locks.RETENTION, 0)
        elif not locks.try_lock(lock_conn, locks.RETENTION, 0):
            lock_conn.rollback()
            return None
        lock_conn.commit()
        held = True

        def still_ours() -> bool:
            """Hand the lock over between batches: a waiter (`attune prune`, a benchmark)
            is granted it on release, and this pass then ends."""
            nonlocal held
            if not held:
                return False
            locks.unlock(lock_conn, locks.RETENTION, 0)
            held = locks.try_lock(lock_conn, locks.RETENTION, 0)
            lock_conn.commit()
            return held

        try:
            return _pass(engine, ages, batch_size, lambda: keep_going() and still_ours(),
                         lambda busy: sleep(max(pause_seconds,
                                                busy * (1 - duty_cycle) / duty_cycle)))
        finally:
            if held:
                locks.unlock(lock_conn, locks.RETENTION, 0)
                lock_conn.commit()


def _pass(engine: Engine, ages: Ages, batch_size: int, keep_going: Callable[[], bool],
          pause: Callable[[float], Any]) -> dict[str, int]:
    """Every step's batches in turn, each followed by `pause(seconds the batch took)`."""
    with engine.connect() as conn:
        cutoffs = Cutoffs.of(conn, ages)
    total: Counter[str] = Counter({table: 0 for table in TABLES})
    started = time.monotonic()
    for kind, batch in _STEPS:
        cutoff = getattr(cutoffs, kind)
        cursor: tuple[Any, int] | None = (datetime.min.replace(tzinfo=cutoff.tzinfo), 0) \
            if cutoff is not None else None
        while cursor is not None and keep_going():
            began = time.monotonic()
            with transaction(engine) as conn:
                counts, cursor = batch(conn, cutoffs, cursor, batch_size)
                _bump(conn, counts)
            total.update(counts)
            if cursor is not None:
                pause(time.monotonic() - began)
    result = {table: total[table] for table in TABLES}
    if any(result.values()):
        log.info("retention: pruned %s in %.1f s",
                 ", ".join(f"{table}={rows}" for table, rows in result.items()),
                 time.monotonic() - started)
    return result


def count(engine: Engine, ages: Ages) -> dict[str, int]:
    """What a pass with these ages would delete now, per table, deleting nothing."""
    result = {table: 0 for table in TABLES}
    with engine.connect() as conn:
        cutoffs = Cutoffs.of(conn, ages)
        doomed = "SELECT 0 WHERE false"
        if cutoffs.executions is not None:
            params = {"cutoff": cutoffs.executions, "after_at": datetime.min, "after_id": 0,
                      "limit": None, "terminal": _TERMINAL}
            conn.execute(text("CREATE TEMPORARY TABLE prune_doomed ON COMMIT DROP AS "
                              + _TREES.format(roots=_ROOTS) + _FINISHED), params)
            doomed = "SELECT id FROM prune_doomed"
            result["executions"] = conn.execute(text(
                "SELECT count(*) FROM prune_doomed")).scalar_one()
            result["inquiries"] = conn.execute(text(
                f"SELECT count(*) FROM inquiries WHERE execution_id IN ({doomed})")).scalar_one()
        if cutoffs.events is not None:
            free = _EVENT_FREE.format(spare=f"AND x.id NOT IN ({doomed})",
                                      spare_en=f"AND en.execution_id NOT IN ({doomed})")
            events = f"SELECT id FROM events ev WHERE created_at < :cutoff AND {free}"
            for table, query in (
                    ("events", f"SELECT count(*) FROM ({events}) e"),
                    ("enforcements", f"SELECT count(*) FROM enforcements WHERE event_id IN "
                                     f"({events}) OR (execution_id IN ({doomed}) "
                                     f"AND created_at < :cutoff)"),
                    ("rule_evaluations", f"SELECT count(*) FROM rule_evaluations WHERE "
                                         f"event_id IN ({events})")):
                result[table] = conn.execute(text(query),
                                             {"cutoff": cutoffs.events}).scalar_one()
        if cutoffs.audit is not None:
            result["audit_log"] = conn.execute(text(
                'SELECT count(*) FROM audit_log WHERE "timestamp" < :cutoff'),
                {"cutoff": cutoffs.audit}).scalar_one()
        conn.rollback()
    return result


def totals(conn: Connection) -> dict[str, int]:
    """Rows pruned so far per table, since the database was made (monotone)."""
    return dict(conn.execute(text("SELECT table_name, rows FROM prune_totals")).tuples().all())
