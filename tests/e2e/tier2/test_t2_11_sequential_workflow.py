"""T2.11 — task_a → task_b → task_c: strict order, each reading the previous result."""

from tests.support.e2e import NotificationSocket, wait_for_execution
from tests.support.flows import ts
from tests.support.orchestration import execute, make_workflow, tasks


def test_tasks_run_strictly_in_order_and_see_the_previous_results(api, make_ws):
    workflow = make_workflow(api, "sequence", "abc", [
        {"name": "task_a", "action": "core.echo", "parameters": {"message": {"step": 1}}},
        {"name": "task_b", "action": "core.echo", "depends_on": ["task_a"],
         "parameters": {"message": {"step": "{{ task_a.result.step + 1 }}",
                                    "after": "{{ task_a.result }}"}}},
        {"name": "task_c", "action": "core.echo", "depends_on": ["task_b"],
         "parameters": {"message": {"step": "{{ task_b.result.step + 1 }}"}}},
    ], output={"steps": ["{{ task_a.result.step }}", "{{ task_b.result.step }}",
                         "{{ task_c.result.step }}"]})
    feed: NotificationSocket = make_ws(api)
    feed.subscribe("execution")

    started = execute(api, workflow["ref"])
    done = wait_for_execution(api, started["id"], timeout=60)

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"steps": [1, 2, 3]}
    by_name = tasks(api, done["id"])
    a, b, c = by_name["task_a"], by_name["task_b"], by_name["task_c"]
    assert [t["result"]["output"]["step"] for t in (a, b, c)] == [1, 2, 3]
    assert b["parameters"]["message"]["after"] == {"step": 1}
    # No task starts (or is even created) before its dependency completed.
    assert ts(a["finished_at"]) <= ts(b["created_at"]) <= ts(b["started_at"])
    assert ts(b["finished_at"]) <= ts(c["created_at"]) <= ts(c["started_at"])
    # The total is at least the sum of the parts: nothing overlapped.
    total = ts(done["finished_at"]) - ts(done["started_at"])
    parts = sum(ts(t["finished_at"]) - ts(t["started_at"]) for t in (a, b, c))
    assert total >= parts
    # The workflow's status reflects sequential progress: running until the last task ends.
    ids = {t["id"]: name for name, t in by_name.items()}
    news = feed.collect_until(
        lambda m: m.get("entity_id") == done["id"] and m["data"]["status"] == "succeeded",
        timeout=30, keep=lambda m: m.get("entity_id") in ids or m.get("entity_id") == done["id"])
    finished_order = [ids[m["entity_id"]] for m in news
                      if m["entity_id"] in ids and m["data"]["status"] == "succeeded"]
    assert finished_order == ["task_a", "task_b", "task_c"]
    workflow_statuses = [m["data"]["status"] for m in news if m["entity_id"] == done["id"]]
    assert workflow_statuses[-2:] == ["running", "succeeded"]
