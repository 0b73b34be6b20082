"""Webhook → execution latency and throughput against a running platform.

Fires N webhooks at a fixed rate at a rule running `core.noop` (or --action), then reads the
executions back and prints webhook→started and webhook→finished latency (p50/p95/p99) and the
completed executions per second; with --run-dir, each service's CPU time per execution.
Usage:

    .venv/bin/python -m bench.flow --url http://127.0.0.1:8080 --count 200 --rate 20 \
        --run-dir .attune/dev
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import requests

from tests.support.e2e import register_user

from .common import ServiceSampler, parse_ts, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--action", default="core.noop")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--run-dir", type=Path,
                        help="the platform's run dir (its pids/ give each service's CPU time)")
    args = parser.parse_args()

    session = register_user(args.url).session
    trigger = session.post(f"{args.url}/api/v1/triggers",
                           json={"name": "bench_hook", "type": "webhook", "parameters": {}},
                           timeout=10).json()["data"]
    rule = session.post(f"{args.url}/api/v1/rules", json={
        "name": "bench_rule", "trigger": trigger["id"], "action": args.action}, timeout=10)
    rule.raise_for_status()
    rule_id = rule.json()["data"]["id"]

    sent: dict[int, float] = {}
    lock = threading.Lock()
    hook = requests.Session()
    headers = {"X-Attune-Webhook-Token": trigger["webhook_token"]}

    def fire(i: int) -> None:
        t0 = time.time()
        r = hook.post(f"{args.url}{trigger['webhook_url']}", json={"i": i}, headers=headers,
                      timeout=30)
        if r.status_code == 202:
            with lock:
                sent[r.json()["data"]["event_id"]] = t0

    sampler = ServiceSampler(args.run_dir).start()
    start = time.time()
    threads = []
    for i in range(args.count):
        due = start + i / args.rate
        time.sleep(max(0.0, due - time.time()))
        t = threading.Thread(target=fire, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print(f"sent {len(sent)}/{args.count} webhooks in {time.time() - start:.2f}s")

    deadline = time.time() + args.timeout
    done: list[dict] = []
    while time.time() < deadline:
        done = []
        offset = 0
        while True:
            page = session.get(f"{args.url}/api/v1/executions", params={
                "rule_id": rule_id, "limit": 200, "offset": offset}, timeout=30).json()
            done += [e for e in page["data"] if e["finished_at"]]
            offset = page["pagination"]["next_offset"]
            if offset is None:
                break
        if len(done) >= len(sent):
            break
        time.sleep(0.5)
    sampler.stop()
    started = [parse_ts(e["started_at"]) - sent[e["event_id"]] for e in done
               if e["started_at"] and e["event_id"] in sent]
    finished = [parse_ts(e["finished_at"]) - sent[e["event_id"]] for e in done
                if e["event_id"] in sent]
    failed = sum(1 for e in done if e["status"] != "succeeded")
    if not finished:
        print("no executions finished")
        return 1
    span = max(parse_ts(e["finished_at"]) for e in done) - start
    for label, values in (("webhook→started", started), ("webhook→finished", finished)):
        print(summary(label, [v * 1000 for v in values]))
    print(f"completed {len(done)}/{len(sent)} ({failed} not succeeded), "
          f"{len(done) / span:.1f} executions/s end to end")
    if args.run_dir:
        print(sampler.report(per=len(done), unit="execution"))
    return 0 if len(done) == len(sent) and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
