"""T3.33 — the operator's RPC calls, as `attune shell` (nameko's ClusterRpcProxy) makes them,
against the running platform: executor.invoke / stats / explain, worker.status, sensor.timers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from tests.support.e2e import unique_name, wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger

HOLD = '''
import time
import attune


def run(key):
    while attune.datastore.get(key) is None:
        time.sleep(0.05)
    return {"released": key}
'''


@pytest.fixture
def n(platform_config) -> Iterator[Any]:
    """`n.rpc` of the shell: a cluster proxy on the platform's own config."""
    with ClusterRpcProxy(platform_config, timeout=60) as rpc:
        yield rpc


def test_invoke_runs_an_action_like_a_function_and_audits_the_operator(n, api):
    done = n.executor.invoke("core.echo", {"message": "from the shell"}, api.tenant_id, wait=30)
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == "from the shell"
    assert done["tenant_id"] == api.tenant_id
    served = api.data(api.get(f"/api/v1/executions/{done['id']}"), 200)  # the tenant's own
    assert served["status"] == "succeeded"
    audit = list_all(api, "/api/v1/audit", entity_type="execution", entity_id=done["id"])
    assert any(entry.get("actor") == "operator" for entry in audit), audit

    # wait=0: the execution as it is at once (not finished yet: it waits for the datastore).
    action = make_action(api, unique_name("op").replace("-", "_"), "hold", HOLD,
                         parameters={"key": {"type": "string", "required": True}})
    key = unique_name("release")
    early = n.executor.invoke(action["ref"], {"key": key}, api.tenant_id, wait=0)
    assert early["status"] in ("requested", "scheduled", "running"), early
    api.data(api.post("/api/v1/datastore", json={"key": key, "value": 1}), (200, 201))
    assert wait_for_execution(api, early["id"])["status"] == "succeeded"

    with pytest.raises(RemoteError, match="NotFoundError"):
        n.executor.invoke("no.such_action", {}, api.tenant_id, wait=0)


def test_stats_counts_executions_queues_and_the_oldest_waiting(n, api):
    before = n.executor.stats()
    done = n.executor.invoke("core.noop", {}, api.tenant_id, wait=30)
    assert done["status"] == "succeeded", done
    after = n.executor.stats()
    assert after["executions"]["succeeded"] >= before["executions"]["succeeded"] + 1
    assert set(after["executions"]) >= {"requested", "scheduled", "running", "succeeded",
                                        "failed", "canceled"}
    worker_queue = "evt-executor-execution.scheduled--worker.on_execution_scheduled"
    assert after["queues"][worker_queue]["consumers"] >= 1, after["queues"]
    assert "rpc-executor" in after["queues"]
    assert "oldest_waiting_execution" in after and "oldest_unprocessed_event" in after


def test_worker_status_shows_the_run_in_flight_and_its_fork_server(n, api):
    action = make_action(api, unique_name("op").replace("-", "_"), "hold", HOLD,
                         parameters={"key": {"type": "string", "required": True}})
    key = unique_name("release")
    running = n.executor.invoke(action["ref"], {"key": key}, api.tenant_id, wait=0)
    wait_for_execution(api, running["id"], statuses={"running"})

    def in_flight() -> dict | None:
        status = n.worker.status()  # e2e runs one worker process: it holds the run
        runs = {run["execution_id"]: run for run in status["runs"]}
        return status if running["id"] in runs else None

    status = wait_until(in_flight, timeout=30, message="the run in the worker's status")
    run = next(r for r in status["runs"] if r["execution_id"] == running["id"])
    assert run["action_ref"] == action["ref"] and run["runner"] == "PythonRunner"
    assert run["running_seconds"] >= 0 and run["canceled"] is False
    assert any(server["owner"] == api.tenant_id and server["alive"]
               for server in status["fork_servers"]), status["fork_servers"]
    assert isinstance(status["environment_builds"], list)
    api.data(api.post("/api/v1/datastore", json={"key": key, "value": 1}), (200, 201))
    wait_for_execution(api, running["id"])
    wait_until(lambda: running["id"] not in {r["execution_id"] for r in n.worker.status()["runs"]},
               timeout=30, message="the run gone from the worker's status")


def test_sensor_timers_lists_each_timer_with_its_next_fire(n, api):
    trigger = make_trigger(api, "interval", {"seconds": 3600})
    make_rule(api, trigger, "core.noop")

    def listed() -> dict | None:
        return next((t for t in n.sensor.timers() if t["trigger_id"] == trigger["id"]), None)

    timer = wait_until(listed, timeout=30, message="the new timer in the sensor's heap")
    assert timer["ref"] == trigger["ref"] and timer["schedule"] == "interval"
    assert timer["next_fire_at"].endswith("Z") or "+" in timer["next_fire_at"]


def test_explain_says_which_rules_matched_and_why_the_others_did_not(n, api):
    trigger = make_trigger(api, "webhook")
    hit = make_rule(api, trigger, "core.noop", criteria="{{ trigger.data.level == 'high' }}")
    miss = make_rule(api, trigger, "core.noop", criteria="{{ trigger.data.level == 'low' }}")
    off = make_rule(api, trigger, "core.noop", enabled=False)
    receipt = fire_webhook(api, trigger, {"level": "high"})
    wait_until(lambda: list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"]),
               timeout=30, message="the event's enforcement")

    explained = n.executor.explain(receipt["event_id"])
    assert explained["event"]["id"] == receipt["event_id"]
    assert explained["event"]["processed_at"] is not None
    by_rule = {rule["rule_id"]: rule for rule in explained["rules"]}
    assert set(by_rule) == {hit["id"], miss["id"], off["id"]}
    assert by_rule[hit["id"]]["recorded"] == {"matched": True, "error": None}
    assert by_rule[hit["id"]]["enforcement"]["execution_id"] is not None
    assert by_rule[hit["id"]]["reason"].startswith("matched")
    assert by_rule[miss["id"]]["recorded"] == {"matched": False, "error": None}
    assert by_rule[miss["id"]]["now"]["matched"] is False
    assert by_rule[miss["id"]]["now"]["outcome"] == "no_match"
    assert by_rule[hit["id"]]["now"]["would_fire"] is True
    assert "criteria were false" in by_rule[miss["id"]]["reason"]
    assert by_rule[off["id"]]["recorded"] is None
    assert by_rule[off["id"]]["reason"] == "not evaluated: the rule is disabled"

    with pytest.raises(RemoteError, match="NotFoundError"):
        n.executor.explain(2**62)
