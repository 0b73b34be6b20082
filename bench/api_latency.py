"""API latency at a fixed request rate against a running platform (target: p95 ≤ 20 ms at
200 req/s, architecture.md).

Registers a user, starts `--seed` `core.noop` executions so the lists have rows, then sends
GETs round-robin over `--paths` at `--rate` for `--seconds` from a pool of client threads, each
with its own keep-alive session (open loop: a request goes out at its scheduled time whether
or not earlier ones have returned). Prints per-path and overall latency, measured from the
request's scheduled time (so a backlog is counted) and from its actual send, and the rate
achieved. Usage:

    .venv/bin/python -m bench.api_latency --url http://127.0.0.1:8080 --rate 200 --seconds 10

The client runs on the same machine and takes CPU from the platform; say so with the figures.
"""

from __future__ import annotations

import argparse
import itertools
import queue
import sys
import threading
import time

import requests

from tests.support.e2e import register_user

from .common import summary

PATHS = ("/api/v1/me", "/api/v1/actions?limit=20", "/api/v1/executions?limit=20",
         "/api/v1/rules?limit=20")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=32, help="client threads")
    parser.add_argument("--seed", type=int, default=50, help="executions created first")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated GET paths")
    args = parser.parse_args()

    api = register_user(args.url)
    session, token = api.session, api.token
    for _ in range(args.seed):
        session.post(f"{args.url}/api/v1/executions", json={"action": "core.noop"},
                     timeout=10).raise_for_status()
    paths = args.paths.split(",")
    for path in paths:  # warm each route once (and fail early on a bad path)
        session.get(f"{args.url}{path}", timeout=10).raise_for_status()

    work: queue.Queue[tuple[float, str] | None] = queue.Queue()
    results: list[tuple[str, float, float, int]] = []  # path, from schedule, from send, status
    lock = threading.Lock()

    def client() -> None:
        own = requests.Session()
        own.headers["Authorization"] = f"Bearer {token}"
        while (item := work.get()) is not None:
            due, path = item
            sent = time.perf_counter()
            status = own.get(f"{args.url}{path}", timeout=30).status_code
            done = time.perf_counter()
            with lock:
                results.append((path, (done - due) * 1000, (done - sent) * 1000, status))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    total = int(args.rate * args.seconds)
    start = time.perf_counter()
    for n, path in zip(range(total), itertools.cycle(paths), strict=False):
        due = start + n / args.rate
        time.sleep(max(0.0, due - time.perf_counter()))
        work.put((due, path))
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start

    errors = sum(1 for *_, status in results if status != 200)
    print(f"{len(results)} GETs in {elapsed:.2f} s ({len(results) / elapsed:.0f} req/s achieved, "
          f"{args.rate:g} offered), {errors} not 200")
    for path in paths:
        print(summary(path, [r[1] for r in results if r[0] == path]))
    print(summary("all (from schedule)", [r[1] for r in results]))
    print(summary("all (from send)", [r[2] for r in results]))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
