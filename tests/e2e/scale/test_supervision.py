"""Supervision: a replica of any role killed with SIGKILL under webhook load is running again
within 10 s without anyone calling `attune up`; nothing accepted meanwhile is lost or doubled;
`attune status` and /health show the restarts."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import requests

from tests.e2e.scale.conftest import status
from tests.support.chaos import Load, assert_queues_drained, audit_outcome, setup_flow
from tests.support.e2e import wait_until
from tests.support.services import alive

RESTART_DEADLINE_SECONDS = 10.0


def active_notifier(scaled) -> str:
    """The notifier replica that consumes the news (the last to log taking the lock, alive)."""
    taken = []
    for path in sorted(Path(scaled.run_dir, "logs").glob("notifier*.log")):
        for match in re.finditer(r"\[(\d+)\] this notifier is the active one", path.read_text()):
            taken.append((path.stem, int(match.group(1))))
    live = {p["name"]: p["pid"] for p in status(scaled)["processes"]}
    return next(name for name, pid in reversed(taken) if live.get(name) == pid)


def kill_and_wait_for_restart(scaled, name: str) -> None:
    old = next(p for p in status(scaled)["processes"] if p["name"] == name)
    os.kill(old["pid"], signal.SIGKILL)

    def back():
        now = next(p for p in status(scaled)["processes"] if p["name"] == name)
        return (now["state"] == "running" and now["pid"] not in (None, old["pid"])
                and alive(now["pid"]) and now["restarts"] == old["restarts"] + 1 and now)

    again = wait_until(back, timeout=RESTART_DEADLINE_SECONDS, interval=0.2,
                       message=f"{name} restarted by the supervisor")
    assert again["last_exit"] == "killed by SIGKILL"


def test_a_killed_replica_of_every_role_is_back_within_10_s_and_no_work_is_lost(
        scaled, tenant):
    trigger, rule = setup_flow(tenant)
    load = Load(tenant, trigger, rate=5.0)
    load.start()
    try:
        victims = ["worker-2", "executor", "sensor-2", active_notifier(scaled), "gateway"]
        for name in victims:
            kill_and_wait_for_restart(scaled, name)
            wait_until(lambda: status(scaled)["ok"], timeout=60, interval=0.5,
                       message=f"the platform whole again after killing {name}")
    finally:
        load.stop()
    outcome = audit_outcome(tenant, trigger, rule, load.accepted, timeout=300)
    assert outcome["accepted"] > 0 and outcome["statuses"] == {"succeeded": outcome["accepted"]}
    assert_queues_drained(scaled)

    report = status(scaled)
    restarted = {p["name"]: p for p in report["processes"] if p["restarts"]}
    assert set(victims) <= set(restarted)
    health = requests.get(f"{scaled.api_url}/health", timeout=10).json()
    assert health["status"] == "ok"
    section = health["supervisor"]
    assert all(section["processes"][name]["restarts"] >= 1 for name in victims)
    assert section["restarts"] >= len(victims)
