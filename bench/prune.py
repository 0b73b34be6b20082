"""Pruning under load: `bench/flow.py`'s throughput without and with the executor's pruning job.

Against a running platform whose executor prunes every few seconds (start it with
`ATTUNE_RETENTION_INTERVAL=5`):
1. seeds `--rows` finished executions 60 days old for a tenant of its own, each with its event
   and enforcement (one INSERT … SELECT generate_series for the three tables), holding the
   retention advisory lock so that no executor prunes yet, then VACUUM ANALYZE;
2. alternates `bench.flow` (closed loop) runs without pruning (the bench holds the lock) and
   while the executor prunes (lock released; taking it back ends the pass at its next batch
   boundary): `--rounds` pruning runs, each between two runs without, so a drift of the box
   over the runs (the flow's own rows, autovacuum) is on both sides of the comparison; each
   pruning run prints its throughput and the rows pruned meanwhile (`prune_totals`, the source
   of `attune_pruned_rows_total`);
3. releases the lock and waits until every seeded row is gone (or `--drain-timeout`),
   printing the prune rate with no load (rows of all tables per second).

    ATTUNE_RETENTION_INTERVAL=5 .venv/bin/attune up --fresh
    .venv/bin/python -m bench.prune --config nameko.yaml --url http://127.0.0.1:8080 \
        --rows 1000000 --concurrency 8 --seconds 30

Issue 20's target: the mean throughput while pruning within 10 % of the mean without.
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
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs while pruning, each between two runs without")
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

    without: list[float] = []
    loaded: list[tuple[float, int, float]] = []  # (exec/s, rows pruned, seconds)
    for round_ in range(args.rounds + 1):
        print("== without pruning (the bench holds the retention lock)")
        without.append(flow(args.url, args.concurrency, args.seconds))
        if round_ == args.rounds:
            break
        holder.execute(text("SELECT pg_advisory_unlock(:c, 0)"), {"c": locks.RETENTION})
        print("== while the executor prunes")
        before, t0 = pruned(engine), time.monotonic()
        rate = flow(args.url, args.concurrency, args.seconds)
        # The pass hands the lock over at its next batch boundary and ends.
        holder.execute(text("SELECT pg_advisory_lock(:c, 0)"), {"c": locks.RETENTION})
        loaded.append((rate, pruned(engine) - before, time.monotonic() - t0))
    holder.execute(text("SELECT pg_advisory_unlock(:c, 0)"), {"c": locks.RETENTION})
    holder.close()

    t2, before = time.monotonic(), pruned(engine)
    remaining = left(engine, tenant_id)
    while remaining and time.monotonic() < t2 + args.drain_timeout:
        time.sleep(1)
        remaining = left(engine, tenant_id)
    drained, t3 = pruned(engine) - before, time.monotonic()
    engine.dispose()

    print("throughput without pruning: " + ", ".join(f"{r:.1f}" for r in without)
          + " executions/s; while pruning: " + ", ".join(f"{r[0]:.1f}" for r in loaded))
    for i, (rate, rows, seconds) in enumerate(loaded):
        around = (without[i] + without[i + 1]) / 2
        print(f"  pruning run {i + 1}: {rate:.1f} against {around:.1f} around it "
              f"({(rate / around - 1) * 100:+.1f} %); pruned {rows} rows in {seconds:.1f} s "
              f"({rows / seconds:.0f} rows/s)")
    base = sum(without) / len(without)
    mean = sum(r[0] for r in loaded) / len(loaded)
    print(f"mean while pruning {mean:.1f} against {base:.1f} without "
          f"({(mean / base - 1) * 100:+.1f} %; target: within -10 %)")
    print(f"then with no load: {drained} rows in {t3 - t2:.1f} s "
          f"({drained / max(t3 - t2, 1e-9):.0f} rows/s); {remaining} seeded executions and "
          f"events left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
