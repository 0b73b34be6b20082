"""Timestamps in answers: RFC 3339 UTC with milliseconds (api.md): `2026-01-27T10:30:00.123Z`."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from nameko_services.domain.db import isoformat


@pytest.mark.parametrize(("value", "expected"), [
    (datetime(2026, 1, 27, 10, 30, 0, 123456, tzinfo=UTC), "2026-01-27T10:30:00.123Z"),
    (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
    (datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "2026-03-04T05:06:07.000Z"),
    (datetime(2026, 3, 4, 5, 6, 7, 999, tzinfo=UTC), "2026-03-04T05:06:07.000Z"),
    (datetime(2026, 1, 1, 1, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
     "2025-12-31T23:00:00.005Z"),
    (datetime(987, 6, 5, 4, 3, 2, 100000, tzinfo=UTC), "0987-06-05T04:03:02.100Z"),
])
def test_a_timestamp_has_its_exact_format(value, expected):
    assert isoformat(value) == expected


def test_every_millisecond_and_field_is_written_as_isoformat_would():
    start = datetime(2026, 1, 27, tzinfo=UTC)
    for step in range(0, 86_400_000, 86_399):  # every hour, minute and second, many millis
        value = start + timedelta(milliseconds=step, microseconds=step % 1000)
        assert isoformat(value) == value.isoformat(timespec="milliseconds")[:-6] + "Z"


def test_none_stays_none():
    assert isoformat(None) is None
