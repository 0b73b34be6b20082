"""Next-fire-time math of timer triggers."""

from datetime import UTC, datetime, timedelta

import pytest

from nameko_services.domain import schedules
from nameko_services.domain.schedules import (
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    ScheduleError,
    first_fire,
)

T0 = datetime(2026, 1, 27, 10, 30, 0, 123000, tzinfo=UTC)


def at(*args, tz=UTC):
    return datetime(*args, tzinfo=tz)


def points(schedule, after, n):
    out = []
    for _ in range(n):
        after = schedule.next_after(after)
        out.append(after)
    return out


# --- interval -----------------------------------------------------------------------------

def test_interval_fires_first_one_period_after_creation():
    s = schedules.parse("interval", {"seconds": 5}, T0)
    assert s.next_after(T0) == T0 + timedelta(seconds=5)
    assert s.next_after(T0 - timedelta(hours=1)) == T0 + timedelta(seconds=5)


def test_interval_points_lie_on_the_creation_grid_without_drift():
    s = schedules.parse("interval", {"seconds": 1.5}, T0)
    late = T0 + timedelta(seconds=1.5 * 1000 + 0.2)  # asked long after, slightly off-grid
    assert s.next_after(late) == T0 + timedelta(seconds=1.5 * 1001)
    grid = points(s, T0, 4)
    assert grid == [T0 + timedelta(seconds=1.5 * k) for k in range(1, 5)]


def test_interval_next_after_a_grid_point_is_the_following_point():
    s = IntervalSchedule(anchor=T0, period=timedelta(seconds=3))
    assert s.next_after(T0 + timedelta(seconds=6)) == T0 + timedelta(seconds=9)


def test_fractional_interval_is_exact_to_the_microsecond():
    s = schedules.parse("interval", {"seconds": 0.1}, T0)
    assert s.next_after(T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=10.1)


@pytest.mark.parametrize("params", [{}, {"seconds": "5"}, {"seconds": 0}, {"seconds": True}])
def test_bad_interval_is_rejected_naming_the_field(params):
    with pytest.raises(ScheduleError) as err:
        schedules.check("interval", params)
    assert err.value.field == "seconds"


# --- date ---------------------------------------------------------------------------------

def test_future_date_fires_once_at_its_time():
    s = schedules.parse("date", {"date": "2026-01-27T10:30:05Z"}, T0)
    assert s == DateSchedule(at(2026, 1, 27, 10, 30, 5))
    assert first_fire(s, last_fired_at=None, now=T0) == at(2026, 1, 27, 10, 30, 5)
    assert s.next_after(at(2026, 1, 27, 10, 30, 5)) is None


def test_past_date_fires_at_once_when_never_fired():
    s = schedules.parse("date", {"date": "2020-01-01T00:00:00Z"}, T0)
    assert first_fire(s, last_fired_at=None, now=T0) == at(2020, 1, 1)


def test_date_never_fires_twice():
    s = schedules.parse("date", {"date": "2026-01-27T10:30:05Z"}, T0)
    assert first_fire(s, last_fired_at=s.at, now=T0) is None


def test_date_with_offset_or_without_zone_is_read_as_utc():
    assert schedules.parse_rfc3339("2026-01-27T12:30:00+02:00") == at(2026, 1, 27, 10, 30)
    assert schedules.parse_rfc3339("2026-01-27T10:30:00") == at(2026, 1, 27, 10, 30)


def test_bad_date_is_rejected():
    with pytest.raises(ScheduleError) as err:
        schedules.check("date", {"date": "tomorrow"})
    assert err.value.field == "date"


# --- cron ---------------------------------------------------------------------------------

def test_cron_at_listed_seconds():
    s = schedules.parse("cron", {"expression": "0,3,6,12 * * * * *"}, T0)
    got = points(s, at(2026, 1, 27, 10, 30, 59), 6)
    assert [(p.minute, p.second) for p in got] == [
        (31, 0), (31, 3), (31, 6), (31, 12), (32, 0), (32, 3)
    ]


def test_cron_every_five_seconds():
    s = schedules.parse("cron", {"expression": "*/5 * * * * *"}, T0)
    assert points(s, at(2026, 1, 27, 10, 30, 2, 500000), 3) == [
        at(2026, 1, 27, 10, 30, 5), at(2026, 1, 27, 10, 30, 10), at(2026, 1, 27, 10, 30, 15)
    ]


def test_cron_on_a_point_gives_the_next_point():
    s = CronSchedule("*/5 * * * * *")
    assert s.next_after(at(2026, 1, 27, 10, 30, 5)) == at(2026, 1, 27, 10, 30, 10)


def test_cron_top_of_every_minute():
    s = schedules.parse("cron", {"expression": "0 * * * * *"}, T0)
    assert points(s, at(2026, 1, 27, 10, 30, 0), 2) == [
        at(2026, 1, 27, 10, 31), at(2026, 1, 27, 10, 32)
    ]


def test_five_field_cron_has_minute_resolution():
    s = schedules.parse("cron", {"expression": "*/15 * * * *"}, T0)
    assert s.next_after(at(2026, 1, 27, 10, 30, 1)) == at(2026, 1, 27, 10, 45)


def test_cron_in_a_timezone_returns_utc():
    s = schedules.parse("cron", {"expression": "0 0 9 * * *", "timezone": "Europe/Paris"}, T0)
    assert s.next_after(at(2026, 1, 27, 12)) == at(2026, 1, 28, 8)   # CET = UTC+1
    assert s.next_after(at(2026, 7, 1, 12)) == at(2026, 7, 2, 7)     # CEST = UTC+2
    assert s.next_after(at(2026, 7, 1, 12)).tzinfo == UTC


def test_cron_skips_the_hour_lost_to_daylight_saving():
    s = schedules.parse("cron", {"expression": "30 2 * * *", "timezone": "Europe/Berlin"}, T0)
    # 2026-03-29 02:30 does not exist in Berlin; the next real point is the day after.
    nxt = s.next_after(at(2026, 3, 28, 12))
    assert nxt.astimezone(UTC) >= at(2026, 3, 29, 1)
    assert s.next_after(nxt) == at(2026, 3, 30, 0, 30)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"expression": "* * *"}, "expression"),
        ({"expression": "61 * * * * *"}, "expression"),
        ({"expression": "* * * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_bad_cron_is_rejected_naming_the_field(params, field):
    with pytest.raises(ScheduleError) as err:
        schedules.check("cron", params)
    assert err.value.field == field


def test_a_non_timer_type_has_no_schedule():
    with pytest.raises(ScheduleError):
        schedules.check("webhook", {})


# --- resuming -----------------------------------------------------------------------------

def test_resume_continues_after_the_last_point_handed_out():
    s = IntervalSchedule(anchor=T0, period=timedelta(seconds=1))
    last = T0 + timedelta(seconds=10)
    # restarted 0.3 s after the last fire: the next point, no double fire of `last`
    assert first_fire(s, last_fired_at=last, now=last + timedelta(seconds=0.3),
                      grace=timedelta(seconds=1)) == T0 + timedelta(seconds=11)


def test_resume_fires_a_point_missed_within_the_grace():
    s = IntervalSchedule(anchor=T0, period=timedelta(seconds=1))
    last = T0 + timedelta(seconds=10)
    now = T0 + timedelta(seconds=11.4)  # the point at 11 s was missed by 0.4 s
    assert first_fire(s, last_fired_at=last, now=now,
                      grace=timedelta(seconds=1)) == T0 + timedelta(seconds=11)


def test_resume_after_a_long_outage_skips_missed_points_instead_of_bursting():
    s = IntervalSchedule(anchor=T0, period=timedelta(seconds=1))
    last = T0 + timedelta(seconds=10)
    now = T0 + timedelta(seconds=100.5)
    assert first_fire(s, last_fired_at=last, now=now,
                      grace=timedelta(seconds=1)) == T0 + timedelta(seconds=100)
    assert first_fire(s, last_fired_at=last, now=now) == T0 + timedelta(seconds=101)


def test_never_fired_timer_starts_one_interval_after_creation():
    s = IntervalSchedule(anchor=T0, period=timedelta(seconds=5))
    assert first_fire(s, last_fired_at=None, now=T0 + timedelta(milliseconds=200),
                      grace=timedelta(seconds=1)) == T0 + timedelta(seconds=5)


def test_resume_of_a_cron_timer():
    s = CronSchedule("0,3,6,12 * * * * *")
    last = at(2026, 1, 27, 10, 30, 6)
    assert first_fire(s, last_fired_at=last, now=at(2026, 1, 27, 10, 30, 7)) == at(
        2026, 1, 27, 10, 30, 12
    )
