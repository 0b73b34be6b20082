"""Search over many executions: `GET /api/v1/executions` with containment and time filters.

Signs up a tenant on a running platform, inserts `--rows` finished executions of `core.echo`
for it straight into the platform's database (one INSERT … SELECT generate_series: parameters
`{"host": "host-<i mod hosts>", "n": i}`, result `{"output": {"code": i mod 100}}`, one per
second of created_at), then times the API over HTTP:

    .venv/bin/python -m bench.search --config nameko.yaml --url http://127.0.0.1:8080 \
        --rows 1000000 --queries 200

Prints p50/p95/p99 per kind of search; `--keep` leaves the rows (they belong to the bench's
tenant only; `up --fresh` drops them).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from nameko_services.config import load_config
from nameko_services.domain.settings import Settings
from tests.support.e2e import register_user

from .common import summary

START = datetime(2026, 1, 1, tzinfo=UTC)

INSERT = text("""
INSERT INTO executions (tenant_id, action_id, action_ref, status, parameters, result,
                        created_at, requested_at, started_at, finished_at, updated_at)
SELECT :tenant_id, a.id, a.ref, 'succeeded',
       jsonb_build_object('host', 'host-' || (i % :hosts), 'n', i),
       jsonb_build_object('output', jsonb_build_object('code', i % 100)),
       ts, ts, ts, ts, ts
FROM generate_series(1, :rows) AS i,
     LATERAL (SELECT :start + make_interval(secs => i) AS ts) AS t,
     (SELECT id, ref FROM actions WHERE ref = 'core.echo' AND tenant_id IS NULL) AS a
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nameko.yaml")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=10_000,
                        help="distinct hosts: a parameters search matches rows/hosts executions")
    parser.add_argument("--queries", type=int, default=200, help="per kind of search")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    settings = Settings.from_mapping(load_config(args.config))
    engine = create_engine(settings.database_url)
    api = register_user(args.url)
    tenant_id = api.tenant_id
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(INSERT, {"tenant_id": tenant_id, "rows": args.rows, "hosts": args.hosts,
                              "start": START})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE executions"))
    print(f"inserted {args.rows} executions for tenant {tenant_id} in "
          f"{time.monotonic() - began:.1f} s")

    def timed(kind: str, params_of) -> None:
        times, totals = [], []
        for _ in range(args.queries):
            params = params_of()
            t0 = time.perf_counter()
            response = api.get("/api/v1/executions", params=params)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text
            totals.append(response.json()["pagination"]["total"])
        print(summary(f"{kind} (matches ~{sum(totals) // len(totals)})", times))

    span = args.rows  # seconds of created_at
    timed("parameters={host}", lambda: {
        "parameters": json.dumps({"host": f"host-{random.randrange(args.hosts)}"})})
    timed("parameters={host}&status", lambda: {
        "parameters": json.dumps({"host": f"host-{random.randrange(args.hosts)}"}),
        "status": "succeeded"})
    timed("result={code}&since&until 1 h", lambda: _window(
        {"result": json.dumps({"output": {"code": random.randrange(100)}})}, span, 3600))
    timed("since&until 1 h", lambda: _window({}, span, 3600))
    timed("first page, no filter", lambda: {})
    if not args.keep:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM executions WHERE tenant_id = :t"), {"t": tenant_id})
    api.close()
    return 0


def _window(params: dict[str, str], span: int, seconds: int) -> dict[str, str]:
    since = START + timedelta(seconds=random.randrange(max(1, span - seconds)))
    return {**params, "since": since.isoformat(),
            "until": (since + timedelta(seconds=seconds)).isoformat()}


if __name__ == "__main__":
    sys.exit(main())
