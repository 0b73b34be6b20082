"""The execution state machine of api.md."""

import itertools

from nameko_services.domain.states import (
    TERMINAL_STATES,
    TRANSITIONS,
    can_transition,
    sources_of,
)
from nameko_services.domain.states import (
    ExecutionStatus as S,
)


def test_the_happy_path_is_allowed():
    path = [S.REQUESTED, S.SCHEDULED, S.RUNNING, S.SUCCEEDED]
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))


def test_terminal_states_have_no_way_out():
    for status in TERMINAL_STATES:
        assert status not in TRANSITIONS
        assert not can_transition(status, S.RUNNING)


def test_validation_failure_and_pause_edges_exist():
    assert can_transition(S.REQUESTED, S.FAILED)
    assert can_transition(S.RUNNING, S.PAUSED) and can_transition(S.PAUSED, S.RUNNING)
    assert can_transition(S.RUNNING, S.CANCELING) and can_transition(S.CANCELING, S.CANCELED)


def test_sources_of_lists_every_predecessor():
    assert sources_of(S.RUNNING) == {S.REQUESTED, S.SCHEDULED, S.PAUSED}
    assert S.SUCCEEDED not in sources_of(S.FAILED)
