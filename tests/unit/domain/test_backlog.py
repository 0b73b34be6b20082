"""The backlog's policy: cached counts, the two bounds, priorities (domain/backlog.py)."""

import pytest

from nameko_services.domain.backlog import (
    MAX_PRIORITY,
    Backlog,
    BacklogSettings,
    priority_for,
)
from nameko_services.domain.errors import BacklogFullError, ConfigurationError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Counts:
    """A `load` returning what the test sets, counting its calls."""

    def __init__(self, **per_tenant):
        self.value = {int(k[1:]): v for k, v in per_tenant.items()}
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return dict(self.value)


def backlog(counts, clock=None, **settings):
    spec = {"tenant_max_queued": 5, "global_max_queued": 8, "refresh_seconds": 0.5,
            "retry_after_seconds": 3, **settings}
    return Backlog(BacklogSettings(**spec), counts, clock or Clock())


def test_counts_are_read_once_per_refresh_interval():
    counts, clock = Counts(t1=2), Clock()
    view = backlog(counts, clock)
    assert view.queued(1) == 2 and view.queued(2) == 0 and view.total() == 2
    assert counts.calls == 1
    counts.value = {1: 4}
    clock.now += 0.4
    assert view.queued(1) == 2 and counts.calls == 1
    clock.now += 0.2
    assert view.queued(1) == 4 and counts.calls == 2


def test_under_the_bounds_a_request_is_admitted_and_counted_until_the_next_refresh():
    counts, clock = Counts(t1=3), Clock()
    view = backlog(counts, clock)
    view.admit(1)
    view.admit(1)
    assert view.queued(1) == 5 and view.total() == 5
    # The burst is counted before any refresh: the next one is refused.
    with pytest.raises(BacklogFullError):
        view.admit(1)
    clock.now += 1
    counts.value = {1: 1}  # the executor and the workers caught up
    view.admit(1)
    assert view.queued(1) == 2


def test_a_tenant_over_its_bound_gets_429_with_retry_after_and_the_counts():
    view = backlog(Counts(t1=5))
    with pytest.raises(BacklogFullError) as refused:
        view.admit(1)
    error = refused.value
    assert (error.http_status, error.code, error.retry_after) == (429, "backlog_full", 3)
    assert error.details == {"scope": "tenant", "queued": 5, "limit": 5, "retry_after": 3}
    assert "retry in 3 s" in error.message
    view.admit(2)  # another tenant is not affected by tenant 1's bound


def test_over_the_global_bound_every_tenant_gets_503():
    view = backlog(Counts(t1=4, t2=4))
    with pytest.raises(BacklogFullError) as refused:
        view.admit(3)
    assert refused.value.http_status == 503
    assert refused.value.details == {"scope": "platform", "queued": 8, "limit": 8,
                                     "retry_after": 3}


def test_the_tenant_bound_is_named_first_when_both_are_exceeded():
    with pytest.raises(BacklogFullError) as refused:
        backlog(Counts(t1=6, t2=4)).admit(1)
    assert refused.value.http_status == 429


def test_disabled_bounds_admit_everything():
    view = backlog(Counts(t1=50), enabled=False)
    view.admit(1)
    assert view.queued(1) == 51


def test_a_failed_refresh_keeps_the_last_counts_and_retries_after_the_interval():
    counts, clock = Counts(t1=5), Clock()
    view = backlog(counts, clock)
    assert view.queued(1) == 5

    def down():
        raise OSError("connection refused")

    view._load = down
    clock.now += 1
    assert view.queued(1) == 5
    view._load = counts
    counts.value = {}
    assert view.queued(1) == 5  # not before the interval
    clock.now += 1
    assert view.queued(1) == 0


def test_in_the_background_only_the_first_count_is_waited_for():
    """The shared Backlog's refreshes after the first run in a thread of their own: an
    admission or a publish goes on with the counts it has while the next ones are read."""
    counts, clock, queued = Counts(t1=2), Clock(), []
    view = Backlog(BacklogSettings(refresh_seconds=0.5), counts, clock, background=queued.append)
    assert view.queued(1) == 2 and counts.calls == 1 and not queued  # the first: inline
    counts.value = {1: 7}
    clock.now += 1
    assert view.priority(1) == priority_for(2)  # the old count, a refresh under way
    assert view.queued(1) == 2 and len(queued) == 1 and counts.calls == 1
    queued.pop()()
    assert view.queued(1) == 7 and counts.calls == 2
    assert not queued  # fresh again: nothing more to read until the interval has passed


def test_priority_falls_one_level_per_doubling_of_the_backlog():
    assert priority_for(0) == MAX_PRIORITY == 9
    assert [priority_for(n) for n in (1, 2, 3, 4, 7, 8, 255, 256, 10**6)] == \
        [8, 7, 7, 6, 6, 5, 1, 0, 0]
    levels = [priority_for(n) for n in range(2000)]
    assert levels == sorted(levels, reverse=True)  # never higher for a larger backlog


def test_a_light_tenant_goes_ahead_of_a_flooding_one():
    view = backlog(Counts(t1=900, t2=1))
    assert view.priority(2) > view.priority(1) == 0


def test_a_flood_between_two_refreshes_loses_priority_at_once():
    """What this process published since the last count counts: a flood's first messages do
    not all go out at the top priority while the cached count still says 0."""
    counts = Counts()
    view = backlog(counts)
    assert [view.priority(1) for _ in range(8)] == [9, 8, 7, 7, 6, 6, 6, 6]
    assert view.priority(2) == MAX_PRIORITY
    assert counts.calls == 1
    assert view.queued(1) == 0  # publishing is not admitting: the bounds count requests


def test_settings_defaults_and_values_from_the_environment():
    assert BacklogSettings.from_mapping({}) == BacklogSettings()
    parsed = BacklogSettings.from_mapping({"enabled": "false", "tenant_max_queued": "50",
                                           "global_max_queued": "200", "refresh_seconds": "0"})
    assert parsed == BacklogSettings(enabled=False, tenant_max_queued=50,
                                     global_max_queued=200, refresh_seconds=0.0)


@pytest.mark.parametrize("section", [
    {"tenant_max": 5},
    {"tenant_max_queued": 0},
    {"global_max_queued": "many"},
    {"refresh_seconds": -1},
    {"retry_after_seconds": 0},
])
def test_bad_settings_fail_naming_the_block(section):
    with pytest.raises(ConfigurationError, match=r"ATTUNE\.backlog"):
        BacklogSettings.from_mapping(section)
