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
import time

from tests.support.chaos import Load, setup_flow
from tests.support.e2e import register_user
from tests.support.flows import list_all, make_rule, make_trigger

from .common import parse_ts, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--interval", type=float, default=1.0, help="timer interval, seconds")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--load-rate", type=float, default=0.0, help="webhooks per second")
    args = parser.parse_args()

    api = register_user(args.url)
    load = None
    if args.load_rate > 0:
        load = Load(api, setup_flow(api)[0], rate=args.load_rate)
        load.start()
    trigger = make_trigger(api, "interval", {"seconds": args.interval})
    rule = make_rule(api, trigger, "core.noop")
    time.sleep(args.seconds)
    if load is not None:
        load.stop()
    # Without an enabled rule the timer stops.
    api.delete(f"/api/v1/rules/{rule['id']}").raise_for_status()

    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
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
    if load is None:
        conditions = ", idle"
    else:
        conditions = (f", webhook load {args.load_rate:g}/s ({len(load.accepted)} accepted, "
                      f"refused {load.refused})")
    print(f"{len(events)} firings of a {args.interval:g} s timer in {args.seconds:g} s"
          f"{conditions}; missed {missed}")
    print(summary("deviation (fired - scheduled)", deviation))
    print(summary("event stored (- scheduled)", stored))
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
