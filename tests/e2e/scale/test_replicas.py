"""Every role replicated on one host (worker 3, executor 2, sensor 2, notifier 2, gateway 2):
work is done once and spread, timers fire once per tick, a pack sensor runs on one replica and
moves when it dies, and every WebSocket client gets every notification in order."""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import requests

from tests.e2e.scale.conftest import REPLICAS, status
from tests.support.e2e import TERMINAL_STATUSES, NotificationSocket, unique_name, wait_until
from tests.support.flows import list_all, make_rule, make_trigger
from tests.support.network import server_of
from tests.support.orchestration import execute
from tests.support.pack_envs import register_folder

WEBHOOKS = 500
TRIGGERS = 10  # the e2e webhook bucket is per trigger and per gateway process
SENDERS = 8


def replica_of(worker: str) -> str:
    """`host:worker-2:1234` → `worker-2` (the worker field names its replica)."""
    return worker.split(":")[1]


def gateway_process(session: requests.Session, api_url: str) -> int:
    """Which gateway process serves this session's (kept-alive) connection."""
    return session.get(f"{api_url}/health", timeout=10).json()["gateway_process"]


def test_webhooks_over_both_gateways_run_once_each_spread_over_every_worker(scaled, tenant):
    triggers = [make_trigger(tenant, "webhook") for _ in range(TRIGGERS)]
    rules = [make_rule(tenant, t, "core.noop") for t in triggers]
    sessions: list[tuple[requests.Session, int]] = []
    while len({process for _, process in sessions}) < REPLICAS["gateway"] or len(
            sessions) < SENDERS:
        assert len(sessions) < 40, "new connections never reached both gateway processes"
        session = requests.Session()
        sessions.append((session, gateway_process(session, scaled.api_url)))
    numbers = itertools.count(1)
    guard = threading.Lock()
    accepted: dict[int, list[int]] = {}  # gateway process → event ids
    paused = threading.Event()

    def send(session: requests.Session, process: int) -> None:
        while True:
            with guard:
                n = next(numbers)
            if n > WEBHOOKS:
                return
            trigger = triggers[n % TRIGGERS]
            while True:
                answer = session.post(f"{scaled.api_url}{trigger['webhook_url']}",
                                      json={"n": n}, timeout=30,
                                      headers={"X-Attune-Webhook-Token":
                                               trigger["webhook_token"]})
                if answer.status_code != 429:
                    break
                paused.wait(0.2)  # a client honouring the refusal (rate or backlog), not a check
            assert answer.status_code == 202, answer.text
            with guard:
                accepted.setdefault(process, []).append(answer.json()["data"]["event_id"])

    threads = [threading.Thread(target=send, args=pair) for pair in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    events = {e for ids in accepted.values() for e in ids}
    assert len(events) == WEBHOOKS
    assert set(accepted) == set(range(1, REPLICAS["gateway"] + 1))  # both took webhooks

    def finished():
        done = [ex for rule in rules
                for ex in list_all(tenant, "/api/v1/executions", rule_id=rule["id"])]
        return done if len(done) >= WEBHOOKS and all(
            ex["status"] in TERMINAL_STATUSES for ex in done) else None

    executions = wait_until(finished, timeout=600, interval=2.0,
                            message="an execution for every webhook, all terminal")
    per_event = Counter(ex["event_id"] for ex in executions)
    assert set(per_event) == events and set(per_event.values()) == {1}  # each exactly once
    assert {ex["status"] for ex in executions} == {"succeeded"}
    spread = Counter(replica_of(ex["worker"]) for ex in executions)
    assert set(spread) == {"worker", "worker-2", "worker-3"}, spread


def test_an_interval_timer_fires_exactly_once_per_tick_with_two_sensors(scaled, tenant):
    assert [p["pid"] for p in status(scaled)["processes"] if p["role"] == "sensor"] and all(
        p["state"] == "running" for p in status(scaled)["processes"] if p["role"] == "sensor")
    trigger = make_trigger(tenant, "interval", {"seconds": 1})
    make_rule(tenant, trigger, "core.noop")
    ticks = 8
    events = wait_until(
        lambda: (found := list_all(tenant, "/api/v1/events", trigger_id=trigger["id"]))
        and len(found) >= ticks and found, timeout=60, message=f"{ticks} timer events")
    scheduled = sorted(datetime.fromisoformat(e["payload"]["scheduled_at"]) for e in events)
    assert len(set(scheduled)) == len(scheduled), "a tick fired twice"
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(scheduled)}
    assert steps == {1.0}, f"ticks skipped or doubled: {scheduled}"
    fire_counts = sorted(e["payload"]["fire_count"] for e in events)
    assert fire_counts == list(range(fire_counts[0], fire_counts[0] + len(events)))


TICK = '''
class Tick:
    """One event per poll, counted from 1 by each process that runs it."""

    def __init__(self):
        self.n = 0

    def poll(self):
        self.n += 1
        return [{"tick": self.n}]
'''


def sensor_starts(scaled, ref: str) -> dict[str, int]:
    """Sensor replica → how many times its log says it started pack sensor `ref`."""
    found = {}
    for number in range(1, REPLICAS["sensor"] + 1):
        name = "sensor" if number == 1 else f"sensor-{number}"
        text = Path(scaled.log(name)).read_text(errors="replace")
        found[name] = len(re.findall(rf"sensor {re.escape(ref)} started", text))
    return found


def test_a_pack_sensor_runs_on_one_sensor_replica_and_moves_when_it_is_killed(
        scaled, tenant, tmp_path):
    pack_ref = unique_name("ticks").replace("-", "_")
    folder = tmp_path / pack_ref
    (folder / "sensors").mkdir(parents=True)
    (folder / "triggers").mkdir()
    (folder / "pack.yaml").write_text(f"ref: {pack_ref}\nversion: 1.0.0\n")
    (folder / "triggers" / "ticked.yaml").write_text("name: ticked\ntype: custom\n")
    (folder / "sensors" / "tick.py").write_text(TICK)
    (folder / "sensors" / "tick.yaml").write_text(
        f"name: tick\nentry_point: sensors/tick.py\npoll_interval: 1\n"
        f"trigger_types: [{pack_ref}.ticked]\n")
    register_folder(tenant, folder)
    ref = f"{pack_ref}.tick"
    trigger = next(t for t in list_all(tenant, "/api/v1/triggers")
                   if t["ref"] == f"{pack_ref}.ticked")

    def ticks():
        return [e["payload"]["tick"] for e in sorted(
            list_all(tenant, "/api/v1/events", trigger_id=trigger["id"]), key=lambda e: e["id"])]

    wait_until(lambda: len(ticks()) >= 4, timeout=60, message="four ticks")
    starts = sensor_starts(scaled, ref)
    holders = [name for name, count in starts.items() if count]
    assert len(holders) == 1 and starts[holders[0]] == 1, starts  # exactly one replica runs it
    before = ticks()
    assert before == list(range(1, len(before) + 1))  # one process counting: no tick twice

    holder = holders[0]
    other = next(name for name in starts if name != holder)
    old_pid = int((scaled.run_dir / "pids" / f"{holder}.pid").read_text())
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: sensor_starts(scaled, ref)[other] == 1, timeout=30,
               message=f"{ref} to start on {other}")
    after = wait_until(lambda: (t := ticks()) and len(t) >= len(before) + 4 and t,
                       timeout=60, message="ticks from the new replica")
    restart = after.index(1, len(before))  # the new process counts from 1 again
    assert after[:restart] == list(range(1, restart + 1))
    assert after[restart:] == list(range(1, len(after) - restart + 1))
    # The killed replica is back (its supervisor) and leaves the sensor where it is.
    wait_until(lambda: any(p["name"] == holder and p["state"] == "running" and p["pid"]
                           and p["pid"] != old_pid for p in status(scaled)["processes"]),
               timeout=10, message=f"{holder} restarted")
    later = wait_until(lambda: (t := ticks()) and len(t) >= len(after) + 3 and t, timeout=60,
                       message="more ticks")
    assert sensor_starts(scaled, ref) == {holder: 1, other: 1}
    assert later[restart:] == list(range(1, len(later) - restart + 1))  # still one counting


ORDER = ("requested", "scheduled", "running", "succeeded")


def queue_consumers(api_url: str) -> dict[str, int]:
    body = requests.get(f"{api_url}/metrics", timeout=10).text
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'^attune_queue_consumers\{queue="([^"]+)"\} (\S+)$', body, re.MULTILINE)}


def test_websocket_clients_on_either_gateway_get_every_notification_in_order(scaled, tenant):
    consumers = queue_consumers(scaled.api_url)
    assert consumers["rpc-notifier"] == REPLICAS["notifier"]  # both answer ping…
    news = {q: n for q, n in consumers.items() if q.endswith("--notifier.on_news")}
    assert news and set(news.values()) == {1}, news  # …one consumes the news
    serving = status(scaled)["gateway_processes"]["serving"]
    port = int(scaled.api_url.rsplit(":", 1)[1])
    clients: list[tuple[NotificationSocket, int]] = []
    while len({pid for _, pid in clients}) < len(serving) or len(clients) < 4:
        assert len(clients) < 30, "new WebSockets never reached both gateway processes"
        feed = NotificationSocket.connect(scaled.ws_url, tenant.token)
        feed.subscribe("execution")
        clients.append((feed, server_of(feed, port, serving)))
    try:
        runs = [execute(tenant, "core.noop")["id"] for _ in range(20)]
        for feed, _ in clients:
            seen: dict[int, list[str]] = {}
            ended: set[int] = set()

            def done(message, seen=seen, ended=ended):
                data = message.get("data") or {}
                if message.get("entity_type") == "execution":
                    seen.setdefault(data["execution_id"], []).append(data["status"])
                    if data["status"] in TERMINAL_STATUSES:
                        ended.add(data["execution_id"])
                return ended >= set(runs)

            feed.collect_until(done, timeout=120)
            feed.sync()  # anything still in flight (a duplicate) arrives before the pong
            for run in runs:
                statuses = seen[run]
                assert len(statuses) == len(set(statuses)), (run, statuses)  # none twice
                assert statuses == sorted(statuses, key=ORDER.index), (run, statuses)
                assert statuses[-1] == "succeeded"
    finally:
        for feed, _ in clients:
            feed.close()


def test_status_lists_every_replica_and_health_has_the_supervisor(scaled):
    report = status(scaled)
    assert report["ok"] is True
    assert Counter(p["role"] for p in report["processes"]) == {**REPLICAS, "gateway": 1}
    assert sorted((p["role"], p["replica"]) for p in report["processes"]
                  if p["role"] == "worker") == [("worker", 1), ("worker", 2), ("worker", 3)]
    assert all(p["pid"] and p["state"] == "running" for p in report["processes"])
    assert len(report["gateway_processes"]["serving"]) == REPLICAS["gateway"]
    health = requests.get(f"{scaled.api_url}/health", timeout=10).json()
    assert health["checks"]["supervisor"] == "ok"
    assert set(health["supervisor"]["processes"]) == {p["name"] for p in report["processes"]}
    assert (scaled.run_dir / "pids" / "worker-3.pid").is_file()
    assert (scaled.run_dir / "logs" / "worker-3.log").stat().st_size > 0
