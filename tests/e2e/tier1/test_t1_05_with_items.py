"""T1.5 — an action with with_items runs one child per element, in parallel, under its parent."""

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger, ts

ITEMS = ["apple", "banana", "cherry"]

CODE = '''
import time

import attune

def run(item, gate, **_):
    # Each child waits for the test's gate, a datastore key of the tenant (the sandbox shows it
    # none of the test's files), so the parent is observably running meanwhile. 0.25 s between
    # reads stays under the execution token's rate limit.
    deadline = time.time() + 50
    while attune.datastore.get(gate) is None:
        if time.time() > deadline:
            raise TimeoutError(f"the gate {gate!r} never opened")
        time.sleep(0.25)
    print("processing", item)
    return item.upper()
'''


def test_with_items_spawns_one_parallel_child_per_item_and_the_parent_waits(api):
    gate = "fruit_gate"
    action = make_action(api, "fruit", "process_items", CODE, with_items="{{ items }}",
                         parameters={"items": {"type": "array", "required": True},
                                     "gate": {"type": "string", "required": True}})
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, action["ref"], parameters={
        "items": "{{ trigger.data.items }}", "gate": gate})
    receipt = fire_webhook(api, trigger, {"items": ITEMS})

    enforcement = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"]),
        timeout=15, message="the enforcement")[0]
    parent_id = enforcement["execution_id"]

    def children_running():
        kids = list_all(api, "/api/v1/executions", parent_execution_id=parent_id)
        return kids if len(kids) == 3 and all(k["status"] == "running" for k in kids) else None

    # Children can run in parallel: all three are running at the same time.
    children = wait_until(children_running, timeout=30, message="3 children running at once")
    parent = api.data(api.get(f"/api/v1/executions/{parent_id}"))
    assert parent["status"] == "running"
    assert parent["rule_id"] == rule["id"] and parent["parent_execution_id"] is None

    api.data(api.post("/api/v1/datastore", json={"key": gate, "value": "go"}), 201)
    finished = [wait_for_execution(api, c["id"]) for c in children]
    parent = wait_for_execution(api, parent_id)
    assert parent["status"] == "succeeded", parent
    # Exactly one child per item, each with its parent id and a single item.
    assert len(finished) == len(ITEMS)
    by_index = sorted(finished, key=lambda c: c["item_index"])
    assert [c["item"] for c in by_index] == ITEMS
    assert [c["item_index"] for c in by_index] == [0, 1, 2]
    assert all(c["parent_execution_id"] == parent_id for c in by_index)
    assert all(c["status"] == "succeeded" for c in by_index)
    assert [c["result"]["output"] for c in by_index] == ["APPLE", "BANANA", "CHERRY"]
    # The parent finished only after every child did, and collects their outputs in order.
    assert ts(parent["finished_at"]) >= max(ts(c["finished_at"]) for c in by_index)
    assert parent["result"]["output"] == ["APPLE", "BANANA", "CHERRY"]
    # Top-level listing shows the parent, not the children.
    top = list_all(api, "/api/v1/executions", top_level="true", rule_id=rule["id"])
    assert [e["id"] for e in top] == [parent_id]
