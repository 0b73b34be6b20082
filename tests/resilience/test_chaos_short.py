"""A short chaos loop: steady webhook load while random services are killed with SIGKILL and
brought back by `attune up`. Afterwards every accepted webhook has its event and exactly one
execution, each with exactly one terminal state, and no message is left in RabbitMQ. The long
version (20 kills plus a RabbitMQ and a PostgreSQL restart) is bench/chaos.py;
docs/reliability.md records its runs.
"""

from __future__ import annotations

import os

import requests

from tests.support.chaos import (
    KILLABLE,
    Load,
    assert_queues_drained,
    audit_outcome,
    kill_and_restart,
    setup_flow,
)
from tests.support.e2e import wait_until

ROUNDS = int(os.environ.get("ATTUNE_CHAOS_ROUNDS", "3"))


def test_nothing_accepted_is_lost_or_doubled_while_services_are_killed(api, platform):
    trigger, rule = setup_flow(api)
    load = Load(api, trigger, rate=5.0)
    load.start()
    try:
        wait_until(lambda: len(load.accepted) >= 5, timeout=30, message="load to flow")
        # Worker and executor always (the interesting ones), then others in turn.
        victims = ["worker", "executor", *[n for n in KILLABLE if n not in ("worker", "executor")]]
        for name in victims[:ROUNDS]:
            before = len(load.accepted)
            kill_and_restart(platform, name)
            wait_until(lambda b=before: len(load.accepted) >= b + 5, timeout=60,
                       message="accepted webhooks after the restart")
    finally:
        load.stop()

    assert len(load.accepted) >= 5 * (ROUNDS + 1)
    outcome = audit_outcome(api, trigger, rule, load.accepted, timeout=420)
    assert outcome["accepted"] == len(set(load.accepted))
    assert sum(outcome["statuses"].values()) == outcome["accepted"]
    assert_queues_drained(platform)
    health = wait_until(
        lambda: (h := requests.get(f"{platform.api_url}/health", timeout=10).json())
        ["status"] == "ok" and h, timeout=60, message="/health ok after the chaos")
    assert set(health["checks"].values()) == {"ok"}
