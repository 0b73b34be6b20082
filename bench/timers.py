"""Timer precision against a running platform (targets: ≤ 5 ms deviation idle, ≤ 50 ms under
full webhook load, no missed firing; architecture.md).

Creates an interval timer (`--interval` seconds) with a `core.noop` rule, optionally fires
webhooks at `--load-rate` per second at another `core.noop` rule meanwhile, waits `--seconds`,
then reads the timer's events. For each firing: *deviation* = `fired_at` - `scheduled_at`
(when the sensor's timer went off against its schedule point, both in the event payload) and
*event stored* = the event's `created_at` - `scheduled_at` (the firing's transaction included).
Missed firings are gaps between consecutive `scheduled_at` larger than one interval. Usage:

    .venv/bin/python -m bench.timers --url http://127.0.0.1:8080 --seconds 60
    .venv/bin/python -m bench.timers --url http://127.0.0.1:8080 --seconds 60 --load-rate 60
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import uuid

import requests

from .common import parse_ts, register, summary


def webhook_load(url: str, session: requests.Session, rate: float, stop: threading.Event,
                 counts: dict[str, int]) -> None:
    """Fire webhooks at `rate`/s (a thread per request, like bench.flow) until `stop`."""
    trigger = session.post(f"{url}/api/v1/triggers", json={
        "name": f"load_{uuid.uuid4().hex[:6]}", "type": "webhook", "parameters": {}},
        timeout=10).json()["data"]
    session.post(f"{url}/api/v1/rules", json={
        "name": f"load_{uuid.uuid4().hex[:6]}", "trigger": trigger["id"],
        "action": "core.noop"}, timeout=10).raise_for_status()
    hook = requests.Session()
    headers = {"X-Attune-Webhook-Token": trigger["webhook_token"]}

    def fire() -> None:
        try:
            status = hook.post(f"{url}{trigger['webhook_url']}", json={}, headers=headers,
                               timeout=30).status_code
        except requests.RequestException:
            status = 0
        counts[str(status)] = counts.get(str(status), 0) + 1

    start = time.time()
    for n in itertools.count():
        due = start + n / rate
        if stop.wait(max(0.0, due - time.time())):
            return
        threading.Thread(target=fire, daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--interval", type=float, default=1.0, help="timer interval, seconds")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--load-rate", type=float, default=0.0, help="webhooks per second")
    args = parser.parse_args()

    session, _ = register(args.url)
    stop = threading.Event()
    counts: dict[str, int] = {}
    if args.load_rate > 0:
        threading.Thread(target=webhook_load, daemon=True,
                         args=(args.url, session, args.load_rate, stop, counts)).start()
    trigger = session.post(f"{args.url}/api/v1/triggers", json={
        "name": f"tick_{uuid.uuid4().hex[:6]}", "type": "interval",
        "parameters": {"seconds": args.interval}}, timeout=10).json()["data"]
    rule = session.post(f"{args.url}/api/v1/rules", json={
        "name": f"tick_{uuid.uuid4().hex[:6]}", "trigger": trigger["id"],
        "action": "core.noop"}, timeout=10)
    rule.raise_for_status()
    time.sleep(args.seconds)
    stop.set()
    # Without an enabled rule the timer stops.
    session.delete(f"{args.url}/api/v1/rules/{rule.json()['data']['id']}",
                   timeout=10).raise_for_status()

    events: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        page = session.get(f"{args.url}/api/v1/events", params={
            "trigger_id": trigger["id"], "limit": 200, "offset": offset}, timeout=30).json()
        events += page["data"]
        offset = page["pagination"]["next_offset"]
    if not events:
        print("the timer never fired", file=sys.stderr)
        return 1
    events.sort(key=lambda e: e["payload"]["scheduled_at"])
    scheduled = [parse_ts(e["payload"]["scheduled_at"]) for e in events]
    deviation = [(parse_ts(e["payload"]["fired_at"]) - s) * 1000
                 for e, s in zip(events, scheduled, strict=True)]
    stored = [(parse_ts(e["created_at"]) - s) * 1000
              for e, s in zip(events, scheduled, strict=True)]
    missed = sum(round((b - a) / args.interval) - 1 for a, b in itertools.pairwise(scheduled))
    load = f", webhook load {args.load_rate:g}/s ({counts})" if args.load_rate else ", idle"
    print(f"{len(events)} firings of a {args.interval:g} s timer in {args.seconds:g} s{load}; "
          f"missed {missed}")
    print(summary("deviation (fired - scheduled)", deviation))
    print(summary("event stored (- scheduled)", stored))
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
