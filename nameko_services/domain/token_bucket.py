"""Keyed token buckets shared by every gateway process: the policy behind the gateway's rate
limits (api.md "Rate limiting"), kept in PostgreSQL (`rate_limit_buckets`, UNLOGGED).

A bucket holds at most `burst` tokens and refills continuously at `rate` tokens per second; a
request takes one token or is refused with the time until the next token. A bucket that has no
row is full, so a row idle long enough to be full again is deleted (`sweep`) without changing
any answer. Every take is one atomic statement on the database's clock (`clock_timestamp()`),
so the limit is the same whichever gateway, process or host a request reaches: concurrent
takes of one key queue on its row lock. docs/security.md "Rate limits" says why it is
hand-written and what it costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, text

from .db import prepared

# `clock` (tests) or the database's own clock, read once per statement.
_NOW = "WITH clock AS (SELECT coalesce(CAST(:now AS timestamptz), clock_timestamp()) AS now) "


def _level(now: str) -> str:
    """The level of row `b` at `now`: its tokens plus the refill since its stamp, at most the
    burst. A take that waited for the row lock may read a clock earlier than the stamp another
    take left: it counts no refill (never a negative one)."""
    return ("least(CAST(:burst AS float8), b.tokens + CAST(:rate AS float8) * greatest(0.0,"
            f" extract(epoch FROM {now} - b.updated_at)::float8))")


_TAKEN = _level("excluded.updated_at")  # `excluded`: the row the insert proposed, stamped now
TAKE = prepared(text(
    _NOW
    + "INSERT INTO rate_limit_buckets AS b (bucket, key, tokens, granted, updated_at)"
    " SELECT :bucket, :key, CAST(:burst AS float8) - 1.0, true, now FROM clock"
    " ON CONFLICT (bucket, key) DO UPDATE SET"
    f" tokens = {_TAKEN} - CAST({_TAKEN} >= 1.0 AS int),"
    f" granted = {_TAKEN} >= 1.0,"
    " updated_at = greatest(b.updated_at, excluded.updated_at)"
    " RETURNING tokens, granted"
))
PEEK = text(
    _NOW + f"SELECT {_level('clock.now')} FROM rate_limit_buckets b, clock"
    " WHERE b.bucket = :bucket AND b.key = :key"
)
SWEEP = text(
    "DELETE FROM rate_limit_buckets WHERE bucket = :bucket"
    " AND updated_at < clock_timestamp() - make_interval(secs => :full)"
)

Clock = Callable[[], datetime]


class SharedBuckets:
    """The buckets of one name (`user`, `webhook`, …) and size, by key, in PostgreSQL.

    Each statement runs in autocommit (no BEGIN, no COMMIT) on a connection of `engine`'s
    pool: one round trip when `engine` is an autocommit engine (db.make_engine), as the
    gateway's is; `clock` replaces the database's clock in tests.
    """

    def __init__(self, engine: Engine, name: str, rate: float, burst: int, *,
                 clock: Clock | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.name = name
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock

    def _params(self, key: str) -> dict[str, object]:
        return {"bucket": self.name, "key": key, "rate": self.rate, "burst": self.burst,
                "now": self._clock() if self._clock else None}

    def take(self, key: str) -> float:
        """Take one token: 0.0 when granted, else the seconds until one will be there."""
        with self.engine.connect() as conn:
            tokens, granted = conn.execute(TAKE, self._params(key)).one()
        return 0.0 if granted else (1.0 - tokens) / self.rate

    def peek(self, key: str) -> float:
        """Like `take` but without taking: 0.0 when a token is there, else the wait."""
        with self.engine.connect() as conn:
            level = conn.execute(PEEK, self._params(key)).scalar()
        return 0.0 if level is None or level >= 1.0 else (1.0 - level) / self.rate

    def sweep(self) -> int:
        """Delete the rows idle long enough to be full again (a missing row is a full bucket,
        so no answer changes); how many. By the database's clock, whatever `clock` says."""
        with self.engine.connect() as conn:
            return conn.execute(SWEEP, {"bucket": self.name,
                                        "full": self.burst / self.rate}).rowcount


def retry_after_seconds(wait: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1, never earlier than the token."""
    return max(1, math.ceil(wait))
