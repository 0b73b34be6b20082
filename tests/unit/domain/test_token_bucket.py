"""The rate limits' settings and Retry-After (the buckets themselves live in PostgreSQL:
tests/integration/security/test_shared_buckets.py)."""

import pytest

from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.settings import BucketSettings, RateLimitSettings
from nameko_services.domain.token_bucket import retry_after_seconds


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
