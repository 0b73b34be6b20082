"""Token buckets in PostgreSQL (domain/token_bucket.py), shared by every gateway process: each
engine below stands for one gateway process (a pool of its own), the clock is moved by hand."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from nameko_services.config import PROJECT_ROOT
from nameko_services.domain.db import make_engine
from nameko_services.domain.token_bucket import SharedBuckets

pytestmark = pytest.mark.integration

class Clock:
    def __init__(self) -> None:
        self.at = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def engines(settings, engine):
    """Two pools on the test database, as two gateway processes have."""
    made = [make_engine(settings.database_url, pool_size=4) for _ in range(2)]
    yield made
    for each in made:
        each.dispose()


def key() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


def test_a_new_bucket_grants_its_burst_then_refuses_with_the_wait(engine, clock):
    buckets = SharedBuckets(engine, "user", rate=10, burst=10, clock=clock)
    k = key()
    assert [buckets.take(k) for _ in range(10)] == [0.0] * 10
    assert buckets.take(k) == pytest.approx(0.1)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst(engine, clock):
    buckets = SharedBuckets(engine, "user", rate=10, burst=10, clock=clock)
    k = key()
    for _ in range(10):
        buckets.take(k)
    clock.advance(0.25)  # 2.5 tokens
    assert [buckets.take(k) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.05)]
    clock.advance(3600)
    assert sum(1 for _ in range(50) if buckets.take(k) == 0.0) == 10


def test_keys_and_bucket_names_are_independent_and_peek_takes_nothing(engine, clock):
    user = SharedBuckets(engine, "user", rate=1, burst=2, clock=clock)
    admin = SharedBuckets(engine, "admin", rate=1, burst=2, clock=clock)
    a, b = key(), key()
    user.take(a)
    user.take(a)
    assert user.peek(a) == pytest.approx(1.0)
    assert user.peek(a) == pytest.approx(1.0)  # peeking spent nothing
    assert admin.take(a) == 0.0  # same key, another bucket
    assert user.peek(b) == 0.0 and user.take(b) == 0.0 and user.take(b) == 0.0
    assert user.take(b) == pytest.approx(1.0)


def test_two_processes_spend_from_one_bucket(engines, clock):
    one, two = (SharedBuckets(e, "webhook", rate=5, burst=6, clock=clock) for e in engines)
    k = key()
    answers = [(one if n % 2 else two).take(k) for n in range(8)]
    assert answers[:6] == [0.0] * 6
    assert answers[6:] == [pytest.approx(0.2)] * 2  # refused by either, the same wait
    clock.advance(0.2)
    assert [two.take(k), one.take(k)] == [0.0, pytest.approx(0.2)]


# One process of the concurrency test: connects, says so, waits for "go", takes N tokens at
# the given instant and prints how many were granted. The database URL (with its password)
# comes on standard input, never in argv or the environment.
TAKER = """
import json, sys
from datetime import datetime
from nameko_services.config import PROJECT_ROOT
from nameko_services.domain.db import make_engine
from nameko_services.domain.token_bucket import SharedBuckets
job = json.loads(sys.stdin.readline())
at = datetime.fromisoformat(job["at"])
buckets = SharedBuckets(make_engine(job["url"], pool_size=1), "user", rate=1, burst=17,
                        clock=lambda: at)
buckets.peek(job["key"])  # connected
print("ready", flush=True)
sys.stdin.readline()
print(sum(1 for _ in range(job["n"]) if buckets.take(job["key"]) == 0.0), flush=True)
"""


def test_concurrent_takes_from_four_processes_grant_exactly_the_burst(settings, clock):
    """Four processes take 10 tokens each at one instant (no refill): the row lock orders the
    statements, so exactly the burst of 17 is granted, never a token more."""
    job = json.dumps({"url": settings.database_url, "key": key(), "n": 10,
                      "at": clock().isoformat()}) + "\n"
    procs = [subprocess.Popen([sys.executable, "-c", TAKER], cwd=PROJECT_ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range(4)]
    try:
        for proc in procs:
            proc.stdin.write(job)
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:  # all connected: let them go together
            proc.stdin.write("go\n")
            proc.stdin.flush()
        granted = [int(proc.communicate(timeout=60)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert sum(granted) == 17, granted


def test_the_sweep_forgets_only_buckets_that_are_full_again(engine, settings):
    """By the database's clock: a row last used 10 s ago at 1 token/s, burst 5, is full (no
    row means full), one used just now is not."""
    stamp = Clock()
    stamp.at = datetime.now(UTC) - timedelta(seconds=10)
    past = SharedBuckets(engine, "login_address", rate=1, burst=5, clock=stamp)
    now = SharedBuckets(engine, "login_address", rate=1, burst=5)
    old, new = key(), key()
    for _ in range(5):
        past.take(old)
        now.take(new)
    assert now.sweep() >= 1
    with engine.connect() as conn:
        left = set(conn.execute(text(
            "SELECT key FROM rate_limit_buckets WHERE bucket = 'login_address'"
            " AND key IN (:old, :new)"), {"old": old, "new": new}).scalars())
    assert left == {new}
    assert now.peek(old) == 0.0  # forgotten: full, as it was
    assert now.peek(new) > 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(engine, rate, burst):
    with pytest.raises(ValueError, match="rate > 0"):
        SharedBuckets(engine, "user", rate=rate, burst=burst)
