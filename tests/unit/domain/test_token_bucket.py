"""Token buckets (the rate-limit policy) with a clock the test moves by hand."""

import pytest

from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.settings import BucketSettings, RateLimitSettings
from nameko_services.domain.token_bucket import TokenBuckets, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_new_bucket_grants_its_burst_then_refuses_with_the_wait():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, clock=clock)
    assert [buckets.take("u") for _ in range(10)] == [0.0] * 10
    wait = buckets.take("u")
    assert wait == pytest.approx(0.1)
    assert retry_after_seconds(wait) == 1


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, clock=clock)
    for _ in range(10):
        buckets.take("u")
    clock.now += 0.25  # 2.5 tokens
    assert [buckets.take("u") for _ in range(3)][:2] == [0.0, 0.0]
    clock.now += 3600
    granted = sum(1 for _ in range(50) if buckets.take("u") == 0.0)
    assert granted == 10


def test_keys_are_independent_and_peek_takes_nothing():
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=2, clock=clock)
    buckets.take("a")
    buckets.take("a")
    assert buckets.peek("a") > 0
    assert buckets.take("b") == 0.0
    assert buckets.peek("b") == 0.0 and buckets.take("b") == 0.0
    assert buckets.take("b") == pytest.approx(1.0)


def test_only_the_most_recently_used_keys_are_remembered():
    buckets = TokenBuckets(rate=1, burst=1, clock=Clock(), max_keys=3)
    for key in "abcde":
        buckets.take(key)
    assert len(buckets) == 3
    assert buckets.peek("a") == 0.0  # forgotten: full again
    assert buckets.peek("e") > 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate, burst):
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBuckets(rate=rate, burst=burst)


def test_retry_after_is_whole_seconds_never_below_one():
    assert retry_after_seconds(0.01) == 1
    assert retry_after_seconds(1.0) == 1
    assert retry_after_seconds(1.2) == 2


def test_rate_limit_settings_parse_and_name_bad_keys():
    parsed = RateLimitSettings.from_mapping(
        {"enabled": "false", "user": {"rate": 10, "burst": 10}})
    assert parsed.enabled is False
    assert parsed.user == BucketSettings(rate=10.0, burst=10)
    assert parsed.webhook == RateLimitSettings().webhook
    with pytest.raises(ConfigurationError, match="bogus"):
        RateLimitSettings.from_mapping({"bogus": {}})
    with pytest.raises(ConfigurationError, match=r"rate_limit\.user"):
        RateLimitSettings.from_mapping({"user": {"rate": 0}})
    with pytest.raises(ConfigurationError, match="per_minute"):
        RateLimitSettings.from_mapping({"webhook": {"per_minute": 5}})


def test_admins_and_login_addresses_have_buckets_of_their_own():
    default = RateLimitSettings()
    assert default.admin == BucketSettings(rate=200.0, burst=400)
    assert default.login_address == BucketSettings(rate=1.0, burst=20)
    parsed = RateLimitSettings.from_mapping(
        {"admin": {"rate": "30", "burst": 60}, "login_address": {"rate": 0.5, "burst": 8}})
    assert parsed.admin == BucketSettings(rate=30.0, burst=60)
    assert parsed.login_address == BucketSettings(rate=0.5, burst=8)
    assert parsed.user == default.user
    with pytest.raises(ConfigurationError, match=r"rate_limit\.admin needs rate > 0"):
        RateLimitSettings.from_mapping({"admin": {"rate": 10, "burst": 0}})
    with pytest.raises(ConfigurationError, match=r"rate_limit\.login_address"):
        RateLimitSettings.from_mapping({"login_address": {"rate": "fast"}})
    with pytest.raises(ConfigurationError, match=r"rate_limit\.admin: \['exempt'\]"):
        RateLimitSettings.from_mapping({"admin": {"exempt": True}})
