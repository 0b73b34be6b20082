"""Workflow engine benchmarks against a running platform.

1. `sequential`: a workflow of N (default 100) chained `core.noop` tasks. Reports the total, the
   time spent inside the tasks, and the per-task transition overhead — from one task's
   `finished_at` to the next one's `started_at`, split into executor (finished → next created)
   and dispatch + worker claim (created → started).
2. `items`: one task with `with_items` over N items (default 1000) at `concurrency` (default
   50) of `core.noop`. Reports the wall time, items/s, and the peak RSS of every service
   process (read from <run-dir>/pids when --run-dir is given).

    .venv/bin/python -m bench.workflow --url http://127.0.0.1:8080 --run-dir .attune/dev
    .venv/bin/python -m bench.workflow --only items --items 250,500,1000
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.e2e import register_user

from .common import ServiceSampler, parse_ts, pct

TERMINAL = {"succeeded", "succeeded_with_errors", "failed", "canceled"}


class Api:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = register_user(self.url).session
        self.call("POST", "/api/v1/packs", json={"ref": "bench", "version": "1.0.0"})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.session.request(method, f"{self.url}{path}", timeout=60, **kwargs)
        r.raise_for_status()
        return r.json()

    def workflow(self, name: str, block: dict[str, Any], parameters: dict | None = None) -> str:
        body = {"pack": "bench", "name": name, "runner_type": "workflow",
                "parameters": parameters or {}, "workflow": block}
        return self.call("POST", "/api/v1/actions", json=body)["data"]["ref"]

    def run(self, ref: str, parameters: dict | None = None, timeout: float = 600) -> dict:
        execution = self.call("POST", "/api/v1/executions",
                              json={"action": ref, "parameters": parameters or {}})["data"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            row = self.call("GET", f"/api/v1/executions/{execution['id']}")["data"]
            if row["status"] in TERMINAL:
                return row
            time.sleep(0.2)
        raise SystemExit(f"execution {execution['id']} did not finish in {timeout} s")

    def children(self, parent_id: int) -> list[dict]:
        items, offset = [], 0
        while offset is not None:
            page = self.call("GET", "/api/v1/executions", params={
                "parent_execution_id": parent_id, "limit": 200, "offset": offset})
            items += page["data"]
            offset = page["pagination"]["next_offset"]
        return items


def sequential(api: Api, count: int, sampler_dir: Path | None) -> None:
    tasks = [{"name": f"t{n:04d}", "action": "core.noop"} for n in range(count)]
    for previous, task in itertools.pairwise(tasks):
        task["depends_on"] = [previous["name"]]
    ref = api.workflow(f"seq_{count}_{uuid.uuid4().hex[:6]}", {"tasks": tasks})
    with ServiceSampler(sampler_dir) as sampler:
        done = api.run(ref)
    kids = sorted(api.children(done["id"]), key=lambda k: k["id"])
    assert done["status"] == "succeeded" and len(kids) == count, done["status"]
    total = parse_ts(done["finished_at"]) - parse_ts(done["started_at"])
    inside = sum(parse_ts(k["finished_at"]) - parse_ts(k["started_at"]) for k in kids)
    pairs = list(itertools.pairwise(kids))
    gaps = [parse_ts(b["started_at"]) - parse_ts(a["finished_at"]) for a, b in pairs]
    executor = [parse_ts(b["created_at"]) - parse_ts(a["finished_at"]) for a, b in pairs]
    dispatch = [parse_ts(k["started_at"]) - parse_ts(k["created_at"]) for k in kids]
    ms = [g * 1000 for g in gaps]
    print(f"sequential: {count} chained core.noop tasks")
    print(f"  total {total:.2f} s; inside tasks {inside:.2f} s "
          f"({inside / count * 1000:.1f} ms each)")
    print(f"  transition (finished → next started): p50 {pct(ms, 50):.1f} ms  "
          f"p95 {pct(ms, 95):.1f} ms  max {max(ms):.1f} ms  mean {statistics.mean(ms):.1f} ms")
    print(f"    executor (finished → next created):  p50 "
          f"{pct([e * 1000 for e in executor], 50):.1f} ms")
    print(f"    dispatch + claim (created → started): p50 "
          f"{pct([d * 1000 for d in dispatch], 50):.1f} ms")
    print(f"  overhead per task (total - inside) / n: {(total - inside) / count * 1000:.1f} ms")
    print(sampler.report(count, "task"))


def items(api: Api, count: int, concurrency: int, sampler_dir: Path | None) -> None:
    ref = api.workflow(f"items_{count}_{uuid.uuid4().hex[:6]}", {"tasks": [
        {"name": "each", "action": "core.noop", "with_items": "{{ params.items }}",
         "concurrency": concurrency}]}, parameters={"items": {"type": "array"}})
    with ServiceSampler(sampler_dir) as sampler:
        t0 = time.time()
        done = api.run(ref, {"items": list(range(count))})
        wall = time.time() - t0
    assert done["status"] == "succeeded", done["result"]
    elapsed = parse_ts(done["finished_at"]) - parse_ts(done["started_at"])
    print(f"with-items: {count} x core.noop at concurrency {concurrency}")
    print(f"  workflow {elapsed:.2f} s ({count / elapsed:.0f} items/s, "
          f"{elapsed / count * 1000:.2f} ms per item); client wall {wall:.2f} s")
    print(sampler.report(count, "item"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="the platform's run dir (its pids/ give service memory)")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--items", default="1000", help="comma-separated item counts")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--only", choices=["sequential", "items"])
    args = parser.parse_args()
    api = Api(args.url)
    if args.only in (None, "sequential"):
        sequential(api, args.tasks, args.run_dir)
    if args.only in (None, "items"):
        for count in (int(c) for c in args.items.split(",")):
            items(api, count, args.concurrency, args.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
