"""API latency against a running platform, open or closed loop (targets: p95 ≤ 20 ms at 200
req/s, architecture.md; p95 < 100 ms for `/api/v1/executions` with 50 concurrent clients,
issue 15).

Registers a user and starts `--seed` `core.noop` executions so the lists have rows, then sends
GETs round-robin over `--paths` for `--seconds`, each client with its own keep-alive connection:

- open loop (`--rate R`, the default): a request goes out at its scheduled time whether or not
  earlier ones have returned, from a pool of `--threads`; latency is counted from the scheduled
  time (so a backlog shows) and from the actual send;
- closed loop (`--concurrency N`): N clients each send a request, wait for its answer and send
  the next, like wrk; requests completed in the first `--warmup` seconds are not counted.

Prints per-path and overall latency, the rate achieved, and the client's own CPU time (it runs on
the same machine and takes CPU from the platform; say so with the figures); with `--run-dir`,
the CPU each service used meanwhile. Usage:

    .venv/bin/python -m bench.api_latency --url http://127.0.0.1:8080 --rate 200 --seconds 10
    .venv/bin/python -m bench.api_latency --url http://127.0.0.1:8080 --concurrency 50 \
        --paths /api/v1/executions --seconds 20 --run-dir .attune/dev
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.support.e2e import register_user

from .common import Client, ServiceSampler, summary

PATHS = ("/api/v1/me", "/api/v1/actions?limit=20", "/api/v1/executions?limit=20",
         "/api/v1/rules?limit=20")

Result = tuple[str, float, float, int, int]  # path, ms from schedule, ms from send, status (0:
# failed), gateway process (closed loop; 0: not known)


def gateway_process(client: Client) -> int:
    """Which gateway process serves `client`'s connection (`/health`'s `gateway_process`; 0 when
    it does not say)."""
    status, body = client.fetch("/health")
    return int(json.loads(body).get("gateway_process") or 0) if status else 0


def open_loop(make: Callable[[], Client], paths: list[str], rate: float, seconds: float,
              threads: int) -> list[Result]:
    """Requests due at `rate` per second, handed to `threads` clients as they fall due."""
    work: queue.Queue[tuple[float, str] | None] = queue.Queue()
    results: list[Result] = []
    lock = threading.Lock()

    def client() -> None:
        own = make()
        while (item := work.get()) is not None:
            due, path = item
            sent = time.perf_counter()
            status = own.get(path)
            done = time.perf_counter()
            with lock:
                results.append((path, (done - due) * 1000, (done - sent) * 1000, status, 0))

    pool = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start = time.perf_counter()
    for n, path in zip(range(int(rate * seconds)), itertools.cycle(paths), strict=False):
        due = start + n / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        work.put((due, path))
    for _ in pool:
        work.put(None)
    for thread in pool:
        thread.join()
    return results


def closed_loop(make: Callable[[], Client], paths: list[str], concurrency: int, seconds: float,
                warmup: float) -> tuple[list[Result], Counter[int]]:
    """`concurrency` clients sending back to back until `seconds` after the warm-up; only
    requests sent after the warm-up count. Each first asks which gateway process serves its
    connection, so that an uneven spread shows."""
    results: list[Result] = []
    clients: Counter[int] = Counter()  # gateway process → clients it serves
    lock = threading.Lock()
    counted_from = time.perf_counter() + warmup
    end = counted_from + seconds

    def client(offset: int) -> None:
        own = make()
        process = gateway_process(own)
        with lock:
            clients[process] += 1
        for path in itertools.islice(itertools.cycle(paths), offset, None):
            sent = time.perf_counter()
            if sent >= end:
                return
            status = own.get(path)
            took = (time.perf_counter() - sent) * 1000
            if sent >= counted_from:
                with lock:
                    results.append((path, took, took, status, process))

    pool = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results, clients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="open loop: requests per second")
    parser.add_argument("--threads", type=int, default=32, help="open loop: client threads")
    parser.add_argument("--concurrency", type=int,
                        help="closed loop: this many clients sending back to back (not --rate)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="closed loop: seconds of requests not counted")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=50, help="executions created first")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated GET paths")
    parser.add_argument("--run-dir", type=Path,
                        help="the platform's run dir (its pids/ give each service's CPU time)")
    args = parser.parse_args()

    api = register_user(args.url)
    for _ in range(args.seed):
        api.session.post(f"{args.url}/api/v1/executions", json={"action": "core.noop"},
                         timeout=10).raise_for_status()
    paths = args.paths.split(",")
    for path in paths:  # warm each route once (and fail early on a bad path)
        api.session.get(f"{args.url}{path}", timeout=10).raise_for_status()

    def make() -> Client:
        return Client(args.url, {"Authorization": f"Bearer {api.token or ''}"})

    own_cpu = resource.getrusage(resource.RUSAGE_SELF)
    clients: Counter[int]
    with ServiceSampler(args.run_dir) as sampler:
        start = time.perf_counter()
        if args.concurrency:
            results, clients = closed_loop(make, paths, args.concurrency, args.seconds,
                                           args.warmup)
            elapsed = time.perf_counter() - start - args.warmup
            mode = f"closed loop, {args.concurrency} clients"
        else:
            results = open_loop(make, paths, args.rate, args.seconds, args.threads)
            clients = Counter()
            elapsed = time.perf_counter() - start
            mode = f"open loop, {args.rate:g} offered"
    used = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = used.ru_utime + used.ru_stime - own_cpu.ru_utime - own_cpu.ru_stime

    errors = sum(1 for r in results if r[3] != 200)
    print(f"{len(results)} GETs in {elapsed:.2f} s ({len(results) / elapsed:.0f} req/s achieved, "
          f"{mode}), {errors} not 200; client CPU {client_cpu:.2f} s "
          f"({client_cpu / elapsed * 100:.0f} % of a core)")
    if not results:
        return 1
    for path in paths:
        print(summary(path, [r[1] for r in results if r[0] == path]))
    if args.concurrency:
        print(summary("all", [r[1] for r in results]))
        for process in sorted(set(clients) - {0}):
            print(summary(f"process {process}, {clients[process]} clients",
                          [r[1] for r in results if r[4] == process]))
    else:
        print(summary("all (from schedule)", [r[1] for r in results]))
        print(summary("all (from send)", [r[2] for r in results]))
    if args.run_dir:
        print(sampler.report(per=len(results), unit="request"))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
