"""The worker's pure decisions: terminal status, storable results, cancel slots."""

import math

from nameko_services.domain.states import ExecutionStatus as S
from nameko_services.worker.execution import decide, storable
from nameko_services.worker.runtime import Slot
from runners.base import Outcome, RunResult


def test_outcomes_map_onto_terminal_statuses_while_running():
    ok = RunResult(outcome=Outcome.SUCCEEDED, output=1, exit_code=0)
    failed = RunResult(outcome=Outcome.FAILED, exit_code=2,
                       error={"type": "nonzero_exit", "message": "x"})
    assert decide("running", ok) == (S.SUCCEEDED, ok.to_result())
    assert decide("running", failed)[0] is S.FAILED


def test_a_run_that_ended_while_canceling_is_recorded_canceled_keeping_its_output():
    result = RunResult(outcome=Outcome.SUCCEEDED, output={"done": True}, stdout="hi")
    status, doc = decide("canceling", result)
    assert status is S.CANCELED
    assert doc["output"] == {"done": True}
    assert doc["stdout"] == "hi"
    assert doc["error"]["type"] == "canceled"


def test_a_run_stopped_while_the_database_says_running_means_the_worker_went_away():
    status, doc = decide("running", RunResult(outcome=Outcome.CANCELED))
    assert status is S.FAILED
    assert doc["error"]["type"] == "worker_lost"


def test_results_are_made_storable_in_jsonb():
    value = {"s": "a\x00b", 1: [math.nan, math.inf, 1.5], "o": object, "ok": [True, None, 3]}
    out = storable(value)
    assert out["s"] == "a\ufffdb"
    assert out["1"] == [None, None, 1.5]
    assert isinstance(out["o"], str)
    assert out["ok"] == [True, None, 3]


class FakeRunner:
    def __init__(self):
        self.canceled = 0

    def cancel(self):
        self.canceled += 1


def test_a_cancel_that_arrives_before_the_runner_exists_reaches_it_on_attach():
    slot = Slot(1)
    slot.cancel()
    runner = FakeRunner()
    slot.attach(runner)
    assert runner.canceled == 1


def test_a_slot_cancels_its_runner_once():
    slot, runner = Slot(1), FakeRunner()
    slot.attach(runner)
    slot.cancel()
    slot.cancel()
    assert runner.canceled == 1
