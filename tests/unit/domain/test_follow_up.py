"""Which status changes the executor is sent (EXECUTION_FOLLOW_UP): only those it acts on."""

import pytest

from nameko_services.domain.executions import needs_follow_up


def news(status: str, previous: str | None, parent: int | None = 7) -> dict:
    return {"execution_id": 42, "tenant_id": 3, "status": status, "previous": previous,
            "parent_execution_id": parent, "execution": {"id": 42}}


@pytest.mark.parametrize(("status", "previous"), [
    ("succeeded", "running"), ("failed", "running"), ("canceled", "canceling"),
    ("succeeded_with_errors", "running"), ("paused", "running"), ("running", "paused"),
])
def test_a_child_that_ends_pauses_or_resumes_moves_its_parent(status, previous):
    assert needs_follow_up(news(status, previous))


@pytest.mark.parametrize(("status", "previous"), [
    ("scheduled", "requested"), ("running", "scheduled"), ("canceling", "running"),
])
def test_a_child_on_its_way_needs_nothing(status, previous):
    assert not needs_follow_up(news(status, previous))


@pytest.mark.parametrize("status", ["scheduled", "running", "succeeded", "failed", "paused"])
def test_a_top_level_execution_needs_nothing(status):
    assert not needs_follow_up(news(status, "running", parent=None))


def test_canceling_a_paused_execution_takes_its_children_along():
    assert needs_follow_up(news("canceled", "paused", parent=None))


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled"])
def test_a_limited_execution_that_ends_frees_its_slot(status):
    assert needs_follow_up({**news(status, "running", parent=None), "concurrency_key": "web1"})


@pytest.mark.parametrize("status", ["scheduled", "running", "canceling"])
def test_a_limited_execution_on_its_way_needs_nothing(status):
    assert not needs_follow_up({**news(status, "scheduled", parent=None), "concurrency_key": ""})


def test_a_top_level_end_that_stored_execution_trigger_events_goes_to_the_executor():
    assert needs_follow_up({**news("succeeded", "running", parent=None), "events": [5]})
