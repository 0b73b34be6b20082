"""T3.31 — bounded backlog and fair share on the whole platform (docs/reliability.md "Backlog").

Every worker slot is held by a long action, so whatever is accepted stays queued. Tenant A's
webhooks are then accepted up to its bound and refused past it (429 `backlog_full`,
`Retry-After`, the API's error body); tenant B's API run is accepted meanwhile. Once the slots
free up, B's run starts before A's backlog has drained (its work message has the higher
priority), and every webhook A had accepted runs exactly once: nothing accepted is lost.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.support.chaos import setup_flow
from tests.support.e2e import TERMINAL_STATUSES, ApiClient, load_config_with, wait_until
from tests.support.flows import list_all, make_action
from tests.support.orchestration import execute
from tests.support.readiness import flag_key, wait_for_flag

HOLD = '''
import time
import attune

def run(ready=""):
    attune.datastore.set(ready, "ready")
    time.sleep(600)
'''
# One sender per trigger, each within its trigger's webhook bucket (config.e2e.yaml: burst 20),
# so what refuses the flood is the backlog bound (120), not the rate limit.
TRIGGERS = 12
PER_TRIGGER = 18


def flood_until_refused(flows: list[tuple[dict, dict]]) -> tuple[list[int], list[Any]]:
    """Webhooks from one thread per trigger until one is refused: (accepted event ids,
    refusals)."""
    accepted: list[int] = []
    refused: list[Any] = []
    lock = threading.Lock()

    def send(client: ApiClient, trigger: dict[str, Any]) -> None:
        headers = {"X-Attune-Webhook-Token": trigger["webhook_token"]}
        for _ in range(PER_TRIGGER):
            with lock:
                if refused:
                    return
            response = client.post(trigger["webhook_url"], json={}, headers=headers)
            with lock:
                if response.status_code == 202:
                    accepted.append(response.json()["data"]["event_id"])
                else:
                    refused.append(response)

    clients = [ApiClient(trigger["webhook_url"]) for trigger, _ in flows]
    threads = [threading.Thread(target=send, args=(c, trigger))
               for c, (trigger, _) in zip(clients, flows, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    return accepted, refused


def test_a_flood_is_bounded_and_does_not_hold_up_another_tenant(platform, make_api):
    config = load_config_with(platform.config, platform.env)
    slots = int(config["max_workers"])  # the one worker process's concurrent runs
    bound = int(config["ATTUNE"]["backlog"]["tenant_max_queued"])
    occupier, tenant_a, tenant_b = make_api(), make_api(), make_api()

    hold = make_action(occupier, "t3_31", "hold", HOLD, parameters={"ready": {}})
    holders = []
    for _ in range(slots):
        ready = flag_key("t3-31")
        holders.append(execute(occupier, hold["ref"], {"ready": ready}))
        wait_for_flag(occupier, ready, timeout=60, message="a holder to run")

    flows = [setup_flow(tenant_a, "core.noop") for _ in range(TRIGGERS)]
    accepted, refused = flood_until_refused(flows)
    assert refused, f"{len(accepted)} webhooks accepted and none refused"
    assert len(accepted) >= bound  # everything under the bound was accepted
    response = refused[0]
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert (error["code"], error["details"]["scope"]) == ("backlog_full", "tenant")
    assert error["details"]["limit"] == bound and error["message"]

    light = execute(tenant_b, "core.noop")  # B is under its bound: accepted

    for holder in holders:
        occupier.data(occupier.post(f"/api/v1/executions/{holder['id']}/cancel"), 202)

    def drained() -> list[dict[str, Any]] | None:
        rows = list_all(tenant_a, "/api/v1/executions")
        done = len(rows) == len(accepted) and all(r["status"] in TERMINAL_STATUSES
                                                  for r in rows)
        return rows if done else None

    rows_a = wait_until(drained, timeout=600, interval=2.0,
                        message="tenant A's accepted webhooks to run")
    light = tenant_b.data(tenant_b.get(f"/api/v1/executions/{light['id']}"))
    assert light["status"] == "succeeded"

    # Nothing accepted is lost, nothing runs twice.
    assert sorted(r["event_id"] for r in rows_a) == sorted(accepted)
    assert {r["status"] for r in rows_a} == {"succeeded"}
    # B's run did not wait for A's backlog: at most the runs that took the freed slots with it.
    ahead = [r for r in rows_a if r["started_at"] < light["started_at"]]
    assert len(ahead) < slots, f"{len(ahead)} of A's {len(rows_a)} runs started before B's"

    # Drained, A is accepted again.
    trigger = flows[0][0]
    wait_until(lambda: tenant_a.post(trigger["webhook_url"], json={}, headers={
        "X-Attune-Webhook-Token": trigger["webhook_token"]}).status_code == 202,
        timeout=30, interval=1.0, message="tenant A to be accepted again")
