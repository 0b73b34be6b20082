"""Notification latency: from the database commit of an execution's status change to a client.

Connects one /ws client (subscribed to executions), starts N `core.noop` executions at a fixed
rate and, for every execution.created / execution.status_changed message, takes the time it was
received minus the row timestamp of that transition (`updated_at`, or the transition's own
column; PostgreSQL's now() inside the transaction that committed it, so the figure also counts
the few milliseconds from that statement to COMMIT — a slight over-estimate). Same host, same
clock. Prints p50/p95/p99 per event and overall. Usage:

    .venv/bin/python -m bench.notify_latency --url http://127.0.0.1:8080 --count 200 --rate 20
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import websocket

from tests.support.e2e import register_user

from .common import parse_ts, summary

STAMP_OF_STATUS = {"requested": "created_at", "scheduled": "scheduled_at",
                   "running": "started_at", "succeeded": "finished_at", "failed": "finished_at"}


def committed_at(message: dict[str, Any]) -> float | None:
    """The row timestamp of the transition a notification reports."""
    execution = message.get("data", {}).get("execution") or {}
    stamp = execution.get("updated_at") or execution.get(
        STAMP_OF_STATUS.get(message["data"].get("status"), ""))
    return parse_ts(stamp) if stamp else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="executions started per second")
    parser.add_argument("--action", default="core.noop")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    api = register_user(args.url)
    session, token = api.session, api.token

    ws = websocket.create_connection(args.url.replace("http", "ws", 1) + "/ws",
                                     header=[f"Authorization: Bearer {token}"], timeout=10)
    ws.send(json.dumps({"action": "subscribe", "entity_type": "execution"}))
    ws.send(json.dumps({"action": "ping"}))
    while json.loads(ws.recv()).get("event") != "pong":
        pass

    received: list[tuple[float, dict[str, Any]]] = []
    finished: set[int] = set()
    done = threading.Event()

    def read() -> None:
        ws.settimeout(1.0)
        while not done.is_set():
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketException:
                return
            now = time.time()
            try:
                message = json.loads(text)
            except ValueError:  # a close or empty frame
                continue
            received.append((now, message))
            if message.get("data", {}).get("status") in ("succeeded", "failed"):
                finished.add(message["entity_id"])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started: set[int] = set()
    t0 = time.monotonic()
    for i in range(args.count):
        delay = t0 + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        response = session.post(f"{args.url}/api/v1/executions",
                                json={"action": args.action, "parameters": {}}, timeout=10)
        response.raise_for_status()
        started.add(response.json()["data"]["id"])
    deadline = time.monotonic() + args.timeout
    while not started <= finished and time.monotonic() < deadline:
        time.sleep(0.2)
    done.set()
    ws.close()

    by_event: dict[str, list[float]] = {}
    for at, message in received:
        stamp = committed_at(message)
        if stamp is None or message.get("entity_id") not in started:
            continue
        key = f"{message['event']}:{message['data'].get('status')}"
        by_event.setdefault(key, []).append((at - stamp) * 1000)
    if not by_event:
        print("no notifications received", file=sys.stderr)
        return 1
    print(f"{len(started)} executions at {args.rate:g}/s, {len(finished & started)} finished; "
          f"latency commit → WebSocket client:")
    for key in sorted(by_event):
        print(summary(key, by_event[key]))
    print(summary("all", [v for values in by_event.values() for v in values]))
    return 0 if started <= finished else 2


if __name__ == "__main__":
    sys.exit(main())
