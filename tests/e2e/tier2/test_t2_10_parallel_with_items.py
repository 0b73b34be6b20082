"""T2.10 — with-items children really run in parallel, up to `concurrency` at once."""

import pytest

from tests.support.e2e import wait_for_execution
from tests.support.flows import ts
from tests.support.orchestration import children, execute, make_workflow, tasks


def most_at_once(spans):
    """The largest number of children running at the same moment."""
    return max(sum(s <= start < f for s, f in spans) for start, _ in spans)


def items_workflow(api, name, seconds, concurrency=None):
    task = {"name": "sleepers", "action": "core.sleep", "with_items": "{{ params.items }}",
            "parameters": {"seconds": seconds}}
    if concurrency is not None:
        task["concurrency"] = concurrency
    return make_workflow(api, "parallel", name, [task],
                         parameters={"items": {"type": "array", "required": True}})


def run_items(api, workflow, count):
    done = wait_for_execution(api, execute(api, workflow["ref"],
                                           {"items": list(range(count))})["id"], timeout=90)
    assert done["status"] == "succeeded", done
    parent = tasks(api, done["id"])["sleepers"]
    kids = sorted(children(api, parent["id"]), key=lambda c: c["item_index"])
    assert [k["item"] for k in kids] == list(range(count))
    assert all(k["status"] == "succeeded" for k in kids)
    return parent, [(ts(k["started_at"]), ts(k["finished_at"])) for k in kids]


def test_five_five_second_sleeps_at_concurrency_five_take_about_five_seconds(api):
    workflow = items_workflow(api, "five_by_five", 5, concurrency=5)
    parent, spans = run_items(api, workflow, 5)

    # All five started before any finished: they ran concurrently...
    assert max(s for s, _ in spans) < min(f for _, f in spans)
    assert most_at_once(spans) == 5
    # ...so the whole took about one sleep, not five in a row.
    elapsed = ts(parent["finished_at"]) - ts(parent["started_at"])
    assert 5 <= elapsed < 20, elapsed


@pytest.mark.parametrize(("concurrency", "expected"), [(1, 1), (3, 3), (None, 5)])
def test_concurrency_limits_how_many_run_at_once(api, concurrency, expected):
    workflow = items_workflow(api, f"limit_{concurrency or 'unlimited'}", 1, concurrency)
    _, spans = run_items(api, workflow, 5)
    assert most_at_once(spans) == expected
