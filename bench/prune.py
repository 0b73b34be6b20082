"""Pruning under load: `bench/flow.py`'s throughput without and with the executor's pruning job.

Against a running platform whose executor prunes every few seconds (start it with
`ATTUNE_RETENTION_INTERVAL=5`):
1. seeds `--rows` finished executions 60 days old for a tenant of its own, each with its event
   and enforcement (one INSERT … SELECT generate_series for the three tables), holding the
   retention advisory lock so that no executor prunes yet, then VACUUM ANALYZE;
2. `bench.flow` (closed loop) twice, still holding the lock: the baseline on the same database,
   and how much two runs differ anyway (a pass once started cannot be paused, so both come
   first);
3. releases the lock and runs `bench.flow` again while the executor prunes: its throughput,
   and the rows pruned meanwhile (`prune_totals`, the source of `attune_pruned_rows_total`);
4. waits until every seeded row is gone (or `--drain-timeout`) and prints the overall prune
   rate (rows of all tables per second).

    ATTUNE_RETENTION_INTERVAL=5 .venv/bin/attune up --fresh
    .venv/bin/python -m bench.prune --config nameko.yaml --url http://127.0.0.1:8080 \
        --rows 1000000 --concurrency 8 --seconds 30

Issue 20's target: the second throughput within 10 % of the first.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from sqlalchemy import Engine, create_engine, text

from nameko_services.config import load_config
from nameko_services.domain import locks
from nameko_services.domain.settings import Settings
from tests.support.e2e import register_user

SEED = text("""
WITH ev AS (
    INSERT INTO events (tenant_id, trigger_ref, source, payload, created_at, processed_at)
    SELECT :tenant_id, 'bench.old', 'webhook', jsonb_build_object('i', i), ts, ts
    FROM generate_series(1, :rows) AS i,
         LATERAL (SELECT now() - interval '60 days' - make_interval(secs => :rows - i) AS ts) t
    RETURNING id, created_at
), ex AS (
    INSERT INTO executions (tenant_id, action_ref, status, parameters, result, event_id,
                            created_at, requested_at, started_at, finished_at, updated_at)
    SELECT :tenant_id, 'core.noop', 'succeeded', '{}', '{"output": null}', id,
           created_at, created_at, created_at, created_at, created_at
    FROM ev
    RETURNING id, event_id, created_at
)
INSERT INTO enforcements (tenant_id, event_id, execution_id, status, created_at, updated_at)
SELECT :tenant_id, event_id, id, 'scheduled', created_at, created_at FROM ex
""")
RATE = re.compile(r"([\d.]+) executions/s end to end")


def flow(url: str, concurrency: int, seconds: float) -> float:
    """One closed-loop `bench.flow` run; its end-to-end executions per second."""
    done = subprocess.run([sys.executable, "-m", "bench.flow", "--url", url, "--concurrency",
                           str(concurrency), "--seconds", str(seconds)],
                          capture_output=True, text=True, check=False)
    print(done.stdout.rstrip())
    match = RATE.search(done.stdout)
    if not match:
        raise SystemExit(f"bench.flow failed:\n{done.stdout}{done.stderr}")
    return float(match.group(1))


def pruned(engine: Engine) -> int:
    """Rows pruned so far, all tables together."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(sum(rows), 0) FROM prune_totals")
                                ).scalar_one())


def left(engine: Engine, tenant_id: int) -> int:
    """Seeded executions and events not pruned yet."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT (SELECT count(*) FROM executions WHERE tenant_id = :t)"
            " + (SELECT count(*) FROM events WHERE tenant_id = :t)"), {"t": tenant_id}
        ).scalar_one())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nameko.yaml")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--drain-timeout", type=float, default=1800.0,
                        help="seconds to wait for the rest of the seeded rows to go")
    args = parser.parse_args()

    settings = Settings.from_mapping(load_config(args.config))
    engine = create_engine(settings.database_url)
    holder = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    holder.execute(text("SELECT pg_advisory_lock(:c, 0)"), {"c": locks.RETENTION})

    tenant_id = register_user(args.url).tenant_id
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(SEED, {"tenant_id": tenant_id, "rows": args.rows})
    holder.execute(text("VACUUM ANALYZE executions, events, enforcements"))
    print(f"seeded {args.rows} old executions with their events and enforcements in "
          f"{time.monotonic() - began:.1f} s")

    print("== without pruning (the bench holds the retention lock)")
    baseline = flow(args.url, args.concurrency, args.seconds)
    print("== without pruning again")
    again = flow(args.url, args.concurrency, args.seconds)
    holder.execute(text("SELECT pg_advisory_unlock(:c, 0)"), {"c": locks.RETENTION})
    print("== while the executor prunes")
    before, t0 = pruned(engine), time.monotonic()
    loaded = flow(args.url, args.concurrency, args.seconds)
    during, t1 = pruned(engine) - before, time.monotonic()
    holder.close()

    remaining = left(engine, tenant_id)
    deadline = t1 + args.drain_timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(1)
        remaining = left(engine, tenant_id)
    total, t3 = pruned(engine) - before, time.monotonic()
    engine.dispose()

    print(f"throughput: {baseline:.1f} and {again:.1f} executions/s without pruning, "
          f"{loaded:.1f} while pruning ({(loaded / ((baseline + again) / 2) - 1) * 100:+.1f} % "
          f"of their mean; target: within -10 %)")
    print(f"pruned during the loaded run: {during} rows (executions, events, enforcements) in "
          f"{t1 - t0:.1f} s ({during / (t1 - t0):.0f} rows/s)")
    print(f"pruned in all: {total} rows in {t3 - t0:.1f} s ({total / (t3 - t0):.0f} rows/s); "
          f"{remaining} seeded executions and events left")
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
