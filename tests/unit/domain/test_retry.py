"""compute_backoff and RetryPolicy: attempt n waits min(delay * multiplier^(n-1), max_delay)."""

import pytest

from nameko_services.domain.retry import DEFAULT_TASK_RETRY, RetryPolicy, compute_backoff


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0)])
def test_backoff_doubles_from_the_delay_and_is_capped(attempt, expected):
    assert compute_backoff(attempt, delay_seconds=2, multiplier=2.0,
                           max_delay_seconds=60) == expected


def test_a_huge_attempt_number_is_capped_instead_of_overflowing():
    assert compute_backoff(10_000, delay_seconds=1, multiplier=10,
                           max_delay_seconds=30) == 30.0


def test_attempt_numbers_start_at_one():
    with pytest.raises(ValueError):
        compute_backoff(0, delay_seconds=1, multiplier=1, max_delay_seconds=1)


def test_a_policy_fills_defaults_and_knows_when_attempts_remain():
    policy = RetryPolicy.from_mapping({"max_attempts": 3, "delay_seconds": 2,
                                       "backoff_multiplier": 2.0})
    assert policy.max_delay_seconds == 3600.0
    assert [policy.delay_after(n) for n in (1, 2)] == [2.0, 4.0]
    assert [policy.allows_another(n) for n in (1, 2, 3)] == [True, True, False]
    assert RetryPolicy.from_mapping(None) == RetryPolicy()
    assert RetryPolicy.from_mapping({"max_attempts": 2}, max_attempts=5).max_attempts == 5
    assert RetryPolicy.from_mapping(policy.to_dict()) == policy


def test_the_default_task_policy_retries_three_times():
    assert DEFAULT_TASK_RETRY.max_attempts == 3
