"""Steady webhook load plus faults, and the audit of what came out (tests/resilience, bench).

The promise checked: every accepted webhook (202) has its event and its execution, each
execution has exactly one terminal state (one terminal audit entry), none is duplicated, and
afterwards no message is left in the platform's RabbitMQ vhost, ready or unacknowledged.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from tests.support.e2e import TERMINAL_STATUSES, ApiClient, load_config_with, wait_until
from tests.support.flows import list_all, make_rule, make_trigger
from tests.support.services import bring_up, kill, wait_gone

KILLABLE = ("gateway", "executor", "worker", "sensor", "notifier")
TERMINAL_AUDIT = {f"execution.{s}" for s in TERMINAL_STATUSES}


@dataclass
class Load:
    """Webhooks sent at `rate` per second from one thread; remembers what was accepted."""

    api: ApiClient
    trigger: dict[str, Any]
    rate: float = 5.0
    accepted: list[int] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-load")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        session = requests.Session()
        began = time.monotonic()
        for n in itertools.count(1):
            # On a schedule, not a pause after each reply, so `rate` is what is sent.
            if self._stop.wait(max(0.0, began + (n - 1) / self.rate - time.monotonic())):
                return
            try:
                response = session.post(
                    self.trigger["webhook_url"], json={"n": n}, timeout=10,
                    headers={"X-Attune-Webhook-Token": self.trigger["webhook_token"]})
                if response.status_code == 202:
                    self.accepted.append(response.json()["data"]["event_id"])
                else:
                    key = str(response.status_code)
                    self.refused[key] = self.refused.get(key, 0) + 1
            except requests.RequestException as exc:
                key = type(exc).__name__
                self.refused[key] = self.refused.get(key, 0) + 1


def setup_flow(api: ApiClient, action: str = "core.noop") -> tuple[dict, dict]:
    """A webhook trigger and a rule running `action` for each of its events."""
    trigger = make_trigger(api, "webhook")
    trigger["webhook_url"] = api.base_url + trigger["webhook_url"]
    return trigger, make_rule(api, trigger, action)


def kill_and_restart(platform: Any, name: str, log: Callable[[str], None] = print) -> None:
    """kill -9 one service, then `attune up` (waits for /health ok)."""
    pid = kill(platform, name, signal.SIGKILL)
    wait_gone(pid)
    began = time.monotonic()
    bring_up(platform)
    log(f"killed {name} (pid {pid}); back in {time.monotonic() - began:.1f} s")


def chaos_rounds(platform: Any, rounds: int, pause: float, seed: int | None = None,
                 log: Callable[[str], None] = print) -> list[str]:
    """`rounds` kill/restart cycles of random services, `pause` seconds of load between."""
    rng = random.Random(seed)
    killed = []
    for _ in range(rounds):
        name = rng.choice(KILLABLE)
        kill_and_restart(platform, name, log)
        killed.append(name)
        time.sleep(pause)  # steady load between faults (a pacing choice, not an assertion)
    return killed


def audit_outcome(api: ApiClient, trigger: dict, rule: dict, accepted: list[int],
                  timeout: float) -> dict[str, Any]:
    """Wait until every accepted event's execution is terminal; check the promise; counts."""
    wanted = set(accepted)

    def settled() -> dict[int, list[dict[str, Any]]] | None:
        by_event: dict[int, list[dict[str, Any]]] = {}
        for ex in list_all(api, "/api/v1/executions", rule_id=rule["id"]):
            by_event.setdefault(ex["event_id"], []).append(ex)
        missing = wanted - set(by_event)
        active = [e for group in by_event.values() for e in group
                  if e["status"] not in TERMINAL_STATUSES]
        return by_event if not missing and not active else None

    by_event = wait_until(settled, timeout=timeout, interval=2.0,
                          message="every accepted webhook's execution to end")
    events = {e["id"] for e in list_all(api, "/api/v1/events", trigger_id=trigger["id"])}
    assert wanted <= events, f"accepted but no event: {sorted(wanted - events)}"
    duplicated = {event: [e["id"] for e in group] for event, group in by_event.items()
                  if len(group) != 1}
    assert not duplicated, f"events with more than one execution: {duplicated}"
    statuses: dict[str, int] = {}
    for event in wanted:
        execution = by_event[event][0]
        statuses[execution["status"]] = statuses.get(execution["status"], 0) + 1
        entries = list_all(api, "/api/v1/audit", entity_type="execution",
                           entity_id=execution["id"])
        terminal = [a["action"] for a in entries if a["action"] in TERMINAL_AUDIT]
        assert len(terminal) == 1, f"execution {execution['id']}: terminal entries {terminal}"
    return {"accepted": len(wanted), "statuses": statuses}


RPC_REPLY_PREFIX = "rpc.reply-"  # nameko.rpc.RPC_REPLY_QUEUE_TEMPLATE


def queue_backlog(vhost: str) -> dict[str, tuple[int, int]]:
    """Queues of `vhost` holding messages: name → (ready, unacknowledged), asked of rabbitmqctl.

    Not counted: an RPC reply queue nobody consumes — the reply to a call whose caller was
    killed while waiting (a gateway's /health pings, say). It holds no work, and RabbitMQ
    deletes it with its reply five minutes after its last consumer (nameko's x-expires)."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_ready",
         "messages_unacknowledged", "consumers", "--formatter", "json"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    return {q["name"]: (q["messages_ready"], q["messages_unacknowledged"])
            for q in json.loads(listed) if (q["messages_ready"] or q["messages_unacknowledged"])
            and not (q["name"].startswith(RPC_REPLY_PREFIX) and q["consumers"] == 0)}


def assert_queues_drained(platform: Any, timeout: float = 120.0) -> None:
    """Wait until the platform's vhost holds no message at all (a moment's heartbeat may pass)."""
    uri = load_config_with(platform.config, platform.env)["AMQP_URI"]
    vhost = unquote(urlsplit(uri).path[1:]) or "/"
    last: dict[str, tuple[int, int]] = {}

    def drained() -> bool:
        last.clear()
        last.update(queue_backlog(vhost))
        return not last

    try:
        wait_until(drained, timeout=timeout, interval=1.0, message="queues to drain")
    except AssertionError as exc:
        raise AssertionError(f"messages left in {vhost} (ready, unacked): {last}") from exc
