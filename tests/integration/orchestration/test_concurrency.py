"""Concurrency policies (issue 20): a real executor and worker, real python actions.

A run that holds a slot sleeps until the test cancels it (canceling a running execution frees
its slot), so "still waiting" and "running at the same time" are read while the slot is
certainly taken, never guessed from timing.
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import update

from nameko_services.domain import execution_control, executions, models
from nameko_services.executor import workers
from tests.integration import rows

pytestmark = pytest.mark.integration

SLEEP = """
import time

def run(host="", seconds=60):
    time.sleep(seconds)
    return {"host": host}
"""
PARAMS = {"host": {"type": "string"}, "seconds": {"type": "number"}}
HOLD, SHORT = 120, 0.2


def limited(flow, **policy):
    return flow.action(code=SLEEP, parameters=PARAMS, concurrency_policy=policy)


def cancel(flow, engine, tenant, execution_id):
    """As the gateway does: the transition, then its news."""
    with engine.begin() as conn:
        outcome = execution_control.cancel(conn, tenant_id=tenant, execution_id=execution_id,
                                           actor="test")
    for source, event_type, payload in outcome.messages:
        flow.dispatch(source, event_type, payload)


def waiting(flow, execution_id):
    row = flow.get(execution_id)
    return row["status"] == "scheduled" and executions.to_api(row)["waiting_for_concurrency"]


def never_overlap(runs):
    """Each run of the list started after the one before it finished (database stamps)."""
    ordered = sorted(runs, key=lambda r: r["started_at"])
    return all(a["finished_at"] <= b["started_at"] for a, b in itertools.pairwise(ordered))


def test_limit_one_per_key_never_overlaps_within_a_key_and_overlaps_across_keys(
    flow, engine, tenant
):
    action = limited(flow, limit=1, key="{{ params.host }}")
    a1 = flow.run(action, {"host": "a", "seconds": HOLD})
    b1 = flow.run(action, {"host": "b", "seconds": HOLD})
    flow.wait(a1["id"], "running")
    flow.wait(b1["id"], "running")  # both keys run at once
    a2 = flow.run(action, {"host": "a", "seconds": SHORT})
    a3 = flow.run(action, {"host": "a", "seconds": SHORT})
    b2 = flow.run(action, {"host": "b", "seconds": SHORT})
    for queued in (a2, a3, b2):
        rows.wait_until(lambda q=queued: waiting(flow, q["id"]), 30)
    assert flow.get(a1["id"])["status"] == "running" and flow.get(b1["id"])["status"] == "running"
    assert flow.get(a2["id"])["concurrency_key"] == "a"

    cancel(flow, engine, tenant, a1["id"])  # frees key a only
    done_a = [flow.wait(a2["id"]), flow.wait(a3["id"])]
    assert [r["status"] for r in done_a] == ["succeeded", "succeeded"]
    assert waiting(flow, b2["id"]) and flow.get(b1["id"])["status"] == "running"

    cancel(flow, engine, tenant, b1["id"])
    assert flow.wait(b2["id"])["status"] == "succeeded"
    runs = {r["id"]: r for r in (flow.get(x["id"]) for x in (a1, a2, a3, b1, b2))}
    assert never_overlap([runs[a1["id"]], runs[a2["id"]], runs[a3["id"]]])
    assert never_overlap([runs[b1["id"]], runs[b2["id"]]])
    assert runs[a2["id"]]["started_at"] < runs[a3["id"]]["started_at"]  # first come first
    # admission is audited on the execution that waited
    assert any(e["action"] == "execution.scheduled" and e["details"].get("admitted")
               for e in flow.audit(a2["id"]))


def test_the_queue_is_first_come_first_served(flow, engine, tenant):
    action = limited(flow, limit=1)
    blocker = flow.run(action, {"seconds": HOLD})
    flow.wait(blocker["id"], "running")
    queued = [flow.run(action, {"host": str(n), "seconds": SHORT}) for n in range(4)]
    for q in queued:
        rows.wait_until(lambda q=q: waiting(flow, q["id"]), 30)

    cancel(flow, engine, tenant, blocker["id"])
    done = [flow.wait(q["id"]) for q in queued]
    assert {r["status"] for r in done} == {"succeeded"}
    assert [r["id"] for r in sorted(done, key=lambda r: r["started_at"])] == [
        q["id"] for q in queued]
    assert never_overlap(done)


def test_overflow_cancel_ends_the_extra_execution_canceled_with_the_reason(flow, engine, tenant):
    action = limited(flow, limit=1, overflow="cancel")
    blocker = flow.run(action, {"seconds": HOLD})
    flow.wait(blocker["id"], "running")

    extra = flow.wait(flow.run(action, {"seconds": SHORT})["id"])
    assert extra["status"] == "canceled" and extra["started_at"] is None
    assert extra["result"]["error"]["type"] == "canceled"
    assert "Concurrency limit reached: 1 of 1" in extra["result"]["error"]["message"]
    assert "overflow: cancel" in extra["result"]["error"]["message"]

    cancel(flow, engine, tenant, blocker["id"])
    flow.wait(blocker["id"])
    assert flow.wait(flow.run(action, {"seconds": SHORT})["id"])["status"] == "succeeded"


def test_canceling_a_waiting_execution_takes_it_out_of_the_queue(flow, engine, tenant):
    action = limited(flow, limit=1)
    blocker = flow.run(action, {"seconds": HOLD})
    flow.wait(blocker["id"], "running")
    first = flow.run(action, {"seconds": SHORT})
    second = flow.run(action, {"seconds": SHORT})
    rows.wait_until(lambda: waiting(flow, first["id"]) and waiting(flow, second["id"]), 30)

    cancel(flow, engine, tenant, first["id"])
    gone = flow.wait(first["id"])
    assert gone["status"] == "canceled"
    assert not executions.to_api(gone)["waiting_for_concurrency"]
    assert waiting(flow, second["id"])  # the slot is still the blocker's

    cancel(flow, engine, tenant, blocker["id"])
    assert flow.wait(second["id"])["status"] == "succeeded"
    assert flow.get(first["id"])["started_at"] is None


def test_a_lost_workers_execution_frees_its_slot(flow, engine, tenant):
    action = limited(flow, limit=1, key="{{ params.host }}")
    victim = flow.run(action, {"host": "web1", "seconds": HOLD})
    flow.wait(victim["id"], "running")
    nxt = flow.run(action, {"host": "web1", "seconds": SHORT})
    rows.wait_until(lambda: waiting(flow, nxt["id"]), 30)

    # The lost-worker check ends the run of a worker that stopped heartbeating this way.
    def dispatch(event_type, payload, source=None):  # the executor's Dispatcher signature
        flow.dispatch(source or "executor", event_type, payload)

    assert workers.end_orphan(engine, dispatch, victim["id"]) == 1
    lost = flow.get(victim["id"])
    assert (lost["status"], lost["result"]["error"]["type"]) == ("failed", "worker_lost")
    assert flow.wait(nxt["id"])["status"] == "succeeded"


def test_a_key_that_cannot_render_fails_the_execution(flow):
    action = limited(flow, limit=1, key="{{ params.host }}")
    failed = flow.wait(flow.run(action, {"seconds": SHORT})["id"])
    assert failed["status"] == "failed" and failed["started_at"] is None
    assert failed["result"]["error"]["type"] == "concurrency_key"
    assert "rendered to nothing" in failed["result"]["error"]["message"]


def test_start_up_admits_an_execution_left_waiting_with_a_free_slot(
    flow, platform, start_executor, engine
):
    """An executor that died between a slot's release and the next admission."""
    action = limited(flow, limit=1)
    platform["executor"].stop()
    left = flow.run(action, {"seconds": SHORT})  # nobody plans it: still `requested`
    with engine.begin() as conn:
        conn.execute(update(models.executions)
                     .where(models.executions.c.id == left["id"])
                     .values(status="scheduled", concurrency_key="",
                             waiting_for_concurrency=True))
    assert waiting(flow, left["id"])

    start_executor()
    assert flow.wait(left["id"])["status"] == "succeeded"


def test_actions_without_a_policy_are_not_held(flow):
    plain = flow.action(code=SLEEP, parameters=PARAMS)
    done = [flow.wait(flow.run(plain, {"seconds": SHORT})["id"]) for _ in range(2)]
    assert [(r["status"], r["concurrency_key"], r["waiting_for_concurrency"]) for r in done] == [
        ("succeeded", None, False)] * 2


def most_at_once(runs):
    """The largest number of runs whose [started_at, finished_at) intervals share an instant."""
    return max(sum(1 for o in runs if o["started_at"] <= r["started_at"] < o["finished_at"])
               for r in runs)


def test_two_executors_never_admit_more_than_the_limit(flow, start_executor):
    start_executor()  # a second replica consumes the same requests
    action = limited(flow, limit=2)
    started = [flow.run(action, {"host": str(n), "seconds": 0.5}) for n in range(8)]
    done = [flow.wait(s["id"]) for s in started]
    assert {r["status"] for r in done} == {"succeeded"}
    assert most_at_once(done) <= 2


def test_the_limit_of_a_shared_system_action_is_per_tenant(flow, engine, tenant):
    pack = rows.insert_row(engine, models.packs, tenant_id=None, ref=rows.unique("syspack"))
    other = rows.make_tenant(engine)
    try:
        action = rows.insert_row(engine, models.actions, tenant_id=None, pack_id=pack["id"],
                                 name="deploy", ref=f"{pack['ref']}.deploy", runner_type="python",
                                 code=SLEEP.lstrip(), parameters=PARAMS,
                                 concurrency_policy={"limit": 1, "key": None,
                                                     "overflow": "queue"})
        blocker = flow.run(action, {"seconds": HOLD})
        flow.wait(blocker["id"], "running")
        theirs = as_tenant(flow, other).run(action, {"seconds": SHORT})
        assert flow.wait(theirs["id"])["status"] == "succeeded"  # not held by our slot
        assert flow.get(blocker["id"])["status"] == "running"
        cancel(flow, engine, tenant, blocker["id"])
        flow.wait(blocker["id"])
    finally:
        rows.delete_tenant(engine, other)
        with engine.begin() as conn:
            conn.execute(models.packs.delete().where(models.packs.c.id == pack["id"]))


def as_tenant(flow, tenant_id):
    """The same platform, asked by another tenant."""
    return type(flow)(flow.engine, tenant_id, flow.dispatch, flow.received)
