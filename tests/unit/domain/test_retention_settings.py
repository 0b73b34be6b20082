"""ATTUNE.retention and `--older-than`: defaults, keep-forever, and start-up failures that name
the bad key (domain/retention.py)."""

import pytest

from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.retention import RetentionSettings, parse_age


def test_defaults_keep_a_month_of_history_and_a_year_of_audit():
    settings = RetentionSettings.from_mapping({})
    assert (settings.executions_days, settings.events_days, settings.audit_days) == (30, 30, 365)
    ages = settings.ages()
    assert (ages.executions, ages.events, ages.audit) == (30 * 86400, 30 * 86400, 365 * 86400)


@pytest.mark.parametrize("forever", [0, "0", None, ""])
def test_zero_or_null_keeps_forever(forever):
    settings = RetentionSettings.from_mapping({"audit_days": forever})
    assert settings.audit_days is None and settings.ages().audit is None
    assert settings.executions_days == 30


def test_text_from_substitution_is_read_as_numbers():
    settings = RetentionSettings.from_mapping({"executions_days": "7", "interval_seconds": "60",
                                               "enabled": "false", "batch_size": "500"})
    assert (settings.executions_days, settings.interval_seconds, settings.enabled,
            settings.batch_size) == (7, 60, False, 500)


@pytest.mark.parametrize(("section", "named"), [
    ({"executions_days": -1}, "ATTUNE.retention.executions_days"),
    ({"events_days": "a month"}, "ATTUNE.retention.events_days"),
    ({"batch_size": 0}, "ATTUNE.retention.batch_size"),
    ({"batch_size": 2.5}, "ATTUNE.retention.batch_size"),
    ({"interval_seconds": 0}, "ATTUNE.retention.interval_seconds"),
    ({"pause_seconds": -0.1}, "ATTUNE.retention.pause_seconds"),
    ({"duty_cycle": 0}, "ATTUNE.retention.duty_cycle"),
    ({"duty_cycle": 1.5}, "ATTUNE.retention.duty_cycle"),
    ({"audit": 365}, "audit"),
])
def test_a_bad_value_fails_at_start_up_naming_it(section, named):
    with pytest.raises(ConfigurationError, match=named):
        RetentionSettings.from_mapping(section)


@pytest.mark.parametrize(("given", "seconds"), [
    ("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("90s", 90), ("2w", 14 * 86400),
    ("3", 3 * 86400), ("1.5d", 1.5 * 86400)])
def test_ages_take_a_unit(given, seconds):
    assert parse_age(given) == seconds


@pytest.mark.parametrize("given", ["", "7y", "-1d", "0d", "d", "7 days"])
def test_a_bad_age_is_refused(given):
    with pytest.raises(ConfigurationError, match="positive number with a unit"):
        parse_age(given)
