"""PostgreSQL session advisory locks: one holder among the replicas of a role.

A session lock is held by a connection until it unlocks or disconnects, so a process that dies
(even by SIGKILL) releases it as soon as PostgreSQL sees its connection close.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

SENSOR = 7_201  # (SENSOR, sensor id): the one process that runs a pack sensor
NOTIFIER = 7_202  # (NOTIFIER, 0): the one notifier that forwards news (notifier/leader.py)
RETENTION = 7_203  # (RETENTION, 0): the one process pruning old history (domain/retention.py)


def try_lock(conn: Connection, lock_class: int, key: int) -> bool:
    """Take the lock (class, key) on `conn` if nobody holds it; never waits."""
    return bool(conn.execute(select(func.pg_try_advisory_lock(lock_class, key))).scalar())


def lock(conn: Connection, lock_class: int, key: int) -> None:
    """Take the lock (class, key) on `conn`, waiting for its holder to release it."""
    conn.execute(select(func.pg_advisory_lock(lock_class, key)))


def unlock(conn: Connection, lock_class: int, key: int) -> None:
    conn.execute(select(func.pg_advisory_unlock(lock_class, key)))
