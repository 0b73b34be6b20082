"""T3.25 — a workflow of 100 sequential tasks runs every task once, in order, as one tree."""

import itertools

from tests.support.e2e import wait_for_execution
from tests.support.flows import ts
from tests.support.orchestration import children, execute, make_workflow

COUNT = 100


def test_one_hundred_sequential_tasks_complete_in_order(api):
    steps = [{"name": f"task_{n:03d}", "action": "core.echo",
              "parameters": {"message": n}} for n in range(COUNT)]
    for previous, step in itertools.pairwise(steps):
        step["depends_on"] = [previous["name"]]
    workflow = make_workflow(api, "large", "hundred", steps,
                             output={"last": f"{{{{ task_{COUNT - 1:03d}.result }}}}"})

    done = wait_for_execution(api, execute(api, workflow["ref"])["id"], timeout=240)

    assert done["status"] == "succeeded", done["result"]["error"]
    assert done["result"]["output"] == {"last": COUNT - 1}
    assert len(done["result"]["tasks"]) == COUNT
    kids = children(api, done["id"])
    # Every task ran exactly once, as a direct child of the workflow...
    assert len(kids) == COUNT
    assert all(k["parent_execution_id"] == done["id"] for k in kids)
    assert all(k["status"] == "succeeded" for k in kids)
    # ...in order: each was created after the previous one finished.
    by_number = sorted(kids, key=lambda k: k["result"]["output"])
    assert [k["task_name"] for k in by_number] == [s["name"] for s in steps]
    assert [k["id"] for k in by_number] == sorted(k["id"] for k in kids)
    for earlier, later in itertools.pairwise(by_number):
        assert ts(earlier["finished_at"]) <= ts(later["created_at"])
    # The tree has no other levels: no task has children of its own.
    assert children(api, by_number[0]["id"]) == []
