"""Next-fire-time math for timer triggers (interval, date, cron): pure, no clock of its own.

Every fire time is a point of the trigger's schedule, never "last fire + interval", so timers do
not drift: an interval fires at `created_at + k·seconds` (k ≥ 1), a cron at its expression's
points in its timezone, a date once. `first_fire` decides where a (re)loaded timer resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .states import TriggerType


class ScheduleError(ValueError):
    """Timer parameters that do not describe a schedule; `field` names the bad parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime | None:
        """The first schedule point strictly after `moment` (None: there is none)."""


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """`anchor + k·period`, k ≥ 1: the first fire is one period after the anchor (creation)."""

    anchor: datetime
    period: timedelta

    def next_after(self, moment: datetime) -> datetime:
        if moment < self.anchor:
            return self.anchor + self.period
        k = (moment - self.anchor) // self.period + 1  # timedelta arithmetic: exact to the µs
        return self.anchor + k * self.period


@dataclass(frozen=True, slots=True)
class DateSchedule:
    """One point in time."""

    at: datetime

    def next_after(self, moment: datetime) -> datetime | None:
        return self.at if self.at > moment else None


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A cron expression: 6 fields (seconds first) or 5 (minute resolution), in an IANA zone."""

    expression: str
    timezone: str = "UTC"

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(ZoneInfo(self.timezone))
        it = croniter(self.expression, local, second_at_beginning=self.has_seconds)
        return it.get_next(datetime).astimezone(UTC)


def parse_rfc3339(value: Any, field: str = "date") -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (a naive one is taken as UTC)."""
    if not isinstance(value, str):
        raise ScheduleError(field, "must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError as exc:
        raise ScheduleError(field, f"not an RFC 3339 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _interval(parameters: Mapping[str, Any], anchor: datetime) -> IntervalSchedule:
    seconds = parameters.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ScheduleError("seconds", "must be a number of seconds")
    period = timedelta(seconds=seconds)
    if period < timedelta(milliseconds=1):
        raise ScheduleError("seconds", "must be at least 0.001")
    return IntervalSchedule(anchor=anchor.astimezone(UTC), period=period)


def _cron(parameters: Mapping[str, Any]) -> CronSchedule:
    expression = parameters.get("expression")
    if not isinstance(expression, str) or len(expression.split()) not in (5, 6):
        raise ScheduleError("expression", "must be a cron expression of 5 or 6 fields")
    expression = " ".join(expression.split())
    with_seconds = len(expression.split()) == 6
    if not croniter.is_valid(expression, second_at_beginning=with_seconds):
        raise ScheduleError("expression", f"invalid cron expression {expression!r}")
    timezone = parameters.get("timezone") or "UTC"
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError("timezone", f"unknown IANA timezone {timezone!r}") from exc
    return CronSchedule(expression=expression, timezone=str(timezone))


def parse(
    trigger_type: str, parameters: Mapping[str, Any] | None, created_at: datetime
) -> Schedule:
    """The schedule of a timer trigger; raises ScheduleError naming the bad parameter."""
    params = parameters or {}
    if trigger_type == TriggerType.INTERVAL:
        return _interval(params, created_at)
    if trigger_type == TriggerType.DATE:
        return DateSchedule(at=parse_rfc3339(params.get("date")))
    if trigger_type == TriggerType.CRON:
        return _cron(params)
    raise ScheduleError("type", f"{trigger_type!r} is not a timer type")


def check(trigger_type: str, parameters: Mapping[str, Any] | None) -> None:
    """Validate timer parameters at definition time (the gateway turns ScheduleError into 422)."""
    parse(trigger_type, parameters, datetime.now(UTC))


def first_fire(
    schedule: Schedule,
    *,
    last_fired_at: datetime | None,
    now: datetime,
    grace: timedelta = timedelta(0),
) -> datetime | None:
    """Where a (re)loaded timer resumes; None when it has nothing left to fire.

    A date fires once: never fired → its date (in the past: at once). Other schedules resume at
    the first point after max(last_fired_at, now - grace): no double fire of a point already
    handed out, and no burst of the points missed while nobody was running the timer.
    """
    if isinstance(schedule, DateSchedule):
        return schedule.at if last_fired_at is None else None
    after = now - grace
    if last_fired_at is not None and last_fired_at > after:
        after = last_fired_at
    return schedule.next_after(after)
