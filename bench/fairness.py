"""Bounded backlog and fair share under one tenant's flood (issue 15, item 4).

Tenant A floods a webhook closed-loop (`--senders` threads, each sending its next webhook as
soon as the previous one is answered; a refusal's `Retry-After` is honoured unless
`--ignore-retry-after`) at a rule running `--action`. Meanwhile tenant B has a 1 s interval
timer rule running the same action and asks for one API run (`POST /api/v1/executions`) every
second. After `--seconds`, the benchmark waits for B's executions to start and prints:

- B's *event → started*: a timer firing's `scheduled_at` (its event payload) → `started_at`,
  an API run's send time (this host's clock) → `started_at`; p50/p99 of each and together;
- A's accepted and refused webhooks (by status and error code) and A's webhook → started
  p50/p99 (send time → `started_at`) of what was accepted;
- executions finished per second during the flood (A's and all), and the load average.

With `--config` (the platform's nameko.yaml, with its environment), the backlog's grouped count
(`domain/backlog.py`) is timed at the end of the flood, while A is at its bound: PostgreSQL's
execution time, round trip and client CPU per count. With `--audit`, it then waits for A's
backlog to drain and checks that every accepted webhook has exactly one execution, ended
(nothing accepted is lost). Usage (a platform started with `ATTUNE_REGISTRATION=open`):

    .venv/bin/python -m bench.fairness --url http://127.0.0.1:8080 --seconds 60 --senders 16 \
        --config nameko.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from tests.support.chaos import audit_outcome, setup_flow
from tests.support.e2e import ApiClient, register_user, wait_until
from tests.support.flows import list_all, make_rule, make_trigger

from .common import parse_ts, pct

REFUSED_BACKOFF_CAP = 5.0


class Flood:
    """Closed-loop webhook senders of one tenant; remembers what was accepted and when sent."""

    def __init__(self, trigger: dict[str, Any], senders: int, honour_retry_after: bool) -> None:
        self.trigger = trigger
        self.senders = senders
        self.honour_retry_after = honour_retry_after
        self.sent: dict[int, float] = {}  # event id → send time
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(senders)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, sender: int) -> None:
        session = requests.Session()
        headers = {"X-Attune-Webhook-Token": self.trigger["webhook_token"]}
        n = 0
        while not self._stop.is_set():
            n += 1
            began = time.time()
            try:
                response = session.post(self.trigger["webhook_url"], json={"s": sender, "n": n},
                                        headers=headers, timeout=30)
            except requests.RequestException as exc:
                with self._lock:
                    self.refused[type(exc).__name__] += 1
                continue
            if response.status_code == 202:
                with self._lock:
                    self.sent[response.json()["data"]["event_id"]] = began
                continue
            code = (response.json().get("error") or {}).get("code", "?") \
                if response.headers.get("Content-Type", "").startswith("application/json") else "?"
            with self._lock:
                self.refused[f"{response.status_code} {code}"] += 1
            retry_after = response.headers.get("Retry-After")
            if self.honour_retry_after and retry_after is not None:
                self._stop.wait(min(float(retry_after), REFUSED_BACKOFF_CAP))


class ApiRuns:
    """One `POST /api/v1/executions` per second for tenant B; remembers id → send time."""

    def __init__(self, api: ApiClient, action: str) -> None:
        self.api = api
        self.action = action
        self.sent: dict[int, float] = {}
        self.refused: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        began = time.monotonic()
        n = 0
        while not self._stop.wait(max(0.0, began + n - time.monotonic())):
            n += 1
            t0 = time.time()
            response = self.api.post("/api/v1/executions", json={"action": self.action})
            if response.status_code == 201:
                self.sent[response.json()["data"]["id"]] = t0
            else:
                self.refused[str(response.status_code)] += 1


def line(label: str, ms: list[float]) -> str:
    if not ms:
        return f"  {label:<34} n=0"
    return (f"  {label:<34} n={len(ms):<5} p50 {pct(ms, 50):8.1f} ms  p99 {pct(ms, 99):8.1f} ms"
            f"  max {max(ms):8.1f} ms")


def started_rows(api: ApiClient, **params: Any) -> list[dict[str, Any]]:
    return list_all(api, "/api/v1/executions", **params)


def count_cost(config: Path, times: int = 200) -> str:
    """Time the backlog's grouped count against the platform's database."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    from nameko_services.config import load_config
    from nameko_services.domain.backlog import queued_counts, queued_statement
    from nameko_services.domain.db import make_engine, transaction

    engine = make_engine(load_config(config)["ATTUNE"]["database_url"], pool_size=1)
    sql = str(queued_statement().compile(dialect=postgresql.dialect(),
                                         compile_kwargs={"literal_binds": True}))
    with transaction(engine) as conn:
        plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()
        counts = queued_counts(conn)
    wall, cpu = [], time.process_time()
    for _ in range(times):
        began = time.perf_counter()
        with transaction(engine) as conn:
            queued_counts(conn)
        wall.append((time.perf_counter() - began) * 1000)
    cpu = (time.process_time() - cpu) / times * 1000
    engine.dispose()
    return (f"backlog count at the flood's end (queued per tenant {counts}): PostgreSQL "
            f"{plan[0]['Execution Time']:.2f} ms, round trip p50 {pct(wall, 50):.2f} ms p99 "
            f"{pct(wall, 99):.2f} ms, client CPU {cpu:.2f} ms per count")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the flood")
    parser.add_argument("--senders", type=int, default=16, help="tenant A's concurrent senders")
    parser.add_argument("--action", default="core.noop")
    parser.add_argument("--ignore-retry-after", action="store_true",
                        help="A's senders retry at once after a refusal")
    parser.add_argument("--wait", type=float, default=600.0,
                        help="how long to wait for B's executions to start after the flood")
    parser.add_argument("--config", type=Path,
                        help="the platform's nameko.yaml: time the backlog count at the end")
    parser.add_argument("--audit", action="store_true",
                        help="wait for A's backlog to drain and check nothing accepted is lost")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()}")
    tenant_a, tenant_b = register_user(args.url), register_user(args.url)
    trigger_a, rule_a = setup_flow(tenant_a, args.action)
    timer_b = make_trigger(tenant_b, "interval", {"seconds": 1})

    flood = Flood(trigger_a, args.senders, honour_retry_after=not args.ignore_retry_after)
    runs_b = ApiRuns(tenant_b, args.action)
    began = time.time()
    flood.start()
    rule_b = make_rule(tenant_b, timer_b, args.action)
    runs_b.start()
    time.sleep(args.seconds)
    cost = count_cost(args.config) if args.config else None
    runs_b.stop()
    tenant_b.patch(f"/api/v1/rules/{rule_b['id']}", json={"enabled": False}).raise_for_status()
    flood.stop()
    ended = time.time()
    load_during = os.getloadavg()

    def b_started() -> list[dict[str, Any]] | None:
        rows = started_rows(tenant_b)
        waiting = [e for e in rows if e["started_at"] is None and e["status"] in
                   ("requested", "scheduled")]
        return rows if not waiting else None

    try:
        rows_b = wait_until(b_started, timeout=args.wait, interval=2.0,
                            message="tenant B's executions to start")
    except AssertionError as exc:
        print(exc, file=sys.stderr)
        rows_b = started_rows(tenant_b)
    events_b = {e["id"]: e for e in list_all(tenant_b, "/api/v1/events",
                                              trigger_id=timer_b["id"])}
    timer_ms, api_ms = [], []
    for row in rows_b:
        if row["started_at"] is None:
            continue
        started = parse_ts(row["started_at"])
        if row["id"] in runs_b.sent:
            api_ms.append((started - runs_b.sent[row["id"]]) * 1000)
        elif row["event_id"] in events_b:
            scheduled = parse_ts(events_b[row["event_id"]]["payload"]["scheduled_at"])
            timer_ms.append((started - scheduled) * 1000)

    rows_a = started_rows(tenant_a, rule_id=rule_a["id"])
    a_ms = [(parse_ts(e["started_at"]) - flood.sent[e["event_id"]]) * 1000
            for e in rows_a if e["started_at"] and e["event_id"] in flood.sent]
    finished_a = [e for e in rows_a if e["finished_at"] and began <= parse_ts(e["finished_at"])
                  <= ended]
    finished_b = [e for e in rows_b if e["finished_at"] and began <= parse_ts(e["finished_at"])
                  <= ended]
    seconds = ended - began

    print(f"flood: {args.senders} senders for {seconds:.1f} s, action {args.action}, "
          f"Retry-After {'ignored' if args.ignore_retry_after else 'honoured'}")
    print("tenant B (1 s timer + 1 API run/s), event → started:")
    print(line("timer actions", timer_ms))
    print(line("API runs", api_ms))
    print(line("all of B", timer_ms + api_ms))
    stages = [(r, parse_ts(r["created_at"]), parse_ts(r["scheduled_at"]), parse_ts(r["started_at"]))
              for r in rows_b if r["started_at"] and r["scheduled_at"]]
    print(line("  of which created → scheduled", [(s - c) * 1000 for _, c, s, _ in stages]))
    print(line("  of which scheduled → started", [(t - s) * 1000 for _, _, s, t in stages]))
    print(f"  B refused: {dict(runs_b.refused) or 'none'}; B not started: "
          f"{sum(1 for r in rows_b if r['started_at'] is None)}")
    print(f"tenant A: accepted {len(flood.sent)} ({len(flood.sent) / seconds:.1f}/s), "
          f"refused {sum(flood.refused.values())} {dict(flood.refused)}")
    print(line("A webhook → started (started ones)", a_ms))
    started_in_flood = sum(1 for e in rows_a
                           if e["started_at"] and parse_ts(e["started_at"]) <= ended)
    print(f"  A accepted but not started when the flood ended: "
          f"{len(flood.sent) - started_in_flood}")
    print(f"executions finished during the flood: A {len(finished_a) / seconds:.1f}/s, "
          f"all {(len(finished_a) + len(finished_b)) / seconds:.1f}/s")
    print(f"load average at the end of the flood: {load_during}")
    if cost:
        print(cost)
    if args.audit:
        counts = audit_outcome(tenant_a, trigger_a, rule_a, list(flood.sent), timeout=args.wait)
        print(f"audit (A): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
